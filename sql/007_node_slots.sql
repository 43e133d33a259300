-- Node capacity shared by every gateway process (issue #16): an Ollama node is sent at most its
-- `capacity` (OLLAMA_BACKENDS) requests at once over all processes and hosts. Processes lease node
-- slots here as they lease a key's concurrency slots (005_limit_ledger.sql), under the same holders,
-- heartbeat and sweeper: a dead process's node slots go with its limit_holders row.

CREATE TABLE node_slots (
    node   text NOT NULL,  -- the node's name in OLLAMA_BACKENDS: the same in every process
    holder uuid NOT NULL REFERENCES limit_holders (holder) ON DELETE CASCADE,
    slots  integer NOT NULL CHECK (slots >= 0),
    PRIMARY KEY (node, holder)
);
CREATE INDEX node_slots_holder ON node_slots (holder);

-- Lease up to p_want slots of a node of p_capacity, as many as are free. Grants for one node are
-- serialised by a transaction-scoped advisory lock on its name, so the sum is read and raised in one
-- step and never passes the capacity (a SELECT then an INSERT from the client could: Kong/kong#2629).
CREATE FUNCTION node_slot_lease(
    p_holder uuid, p_node text, p_capacity integer, p_want integer,
    OUT granted integer, OUT in_use integer)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('node_slots:' || p_node, 0));
    SELECT coalesce(sum(slots), 0)::integer INTO in_use FROM node_slots WHERE node = p_node;
    granted := greatest(0, least(p_want, p_capacity - in_use));
    IF granted > 0 THEN
        INSERT INTO node_slots (node, holder, slots) VALUES (p_node, p_holder, granted)
        ON CONFLICT (node, holder) DO UPDATE SET slots = node_slots.slots + EXCLUDED.slots;
        in_use := in_use + granted;
    END IF;
END $$;

CREATE FUNCTION node_slot_return(p_holder uuid, p_node text, p_slots integer)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('node_slots:' || p_node, 0));
    UPDATE node_slots SET slots = greatest(0, slots - p_slots) WHERE node = p_node AND holder = p_holder;
    DELETE FROM node_slots WHERE node = p_node AND holder = p_holder AND slots = 0;
END $$;

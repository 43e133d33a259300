-- A short-lived token names its key's state when it was issued; any later change of the key's role
-- or active state voids it, even a change that is later undone (user -> admin -> user): comparing
-- the role alone would let the old token back in. A trigger bumps the version, so every writer
-- (admin API, CLI, demo keys ensured at start, plain SQL) voids tokens the same way. Changes to other
-- columns (name, limits, expiry) leave it alone: a token never outlives its key's expiry anyway.

ALTER TABLE api_keys ADD COLUMN state_version integer NOT NULL DEFAULT 0;

CREATE FUNCTION api_keys_bump_state_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.role IS DISTINCT FROM OLD.role OR NEW.is_active IS DISTINCT FROM OLD.is_active THEN
        NEW.state_version := OLD.state_version + 1;
    ELSE
        NEW.state_version := OLD.state_version;  -- never set by hand
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER api_keys_state_version
BEFORE UPDATE ON api_keys
FOR EACH ROW EXECUTE FUNCTION api_keys_bump_state_version();

-- Several Ollama nodes (issue #15): which node served each request, so usage can be read per node.
-- NULL when no node served it: refused before reaching Ollama, or answered by several (a merged
-- model list, a pull to every node). The daily rollups gain the same dimension, so `stats` can
-- group by node without reading raw rows; their unique key grows a sentinel for NULL, as for model.

ALTER TABLE request_log ADD COLUMN node text;

ALTER TABLE usage_daily ADD COLUMN node text;
DROP INDEX usage_daily_day_key_model;
CREATE UNIQUE INDEX usage_daily_day_key_model_node ON usage_daily
    (day, COALESCE(api_key_id, '00000000-0000-0000-0000-000000000000'::uuid), COALESCE(model, ''),
     COALESCE(node, ''));

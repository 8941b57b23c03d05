-- The data version the summary views reflect: the load state (table:gold_version, ...) read
-- just before their last complete refresh. The API's data version is this one, so answers
-- cached under a version always come from views that reflect it; a refresh that failed leaves
-- it behind the load state, and the next load refreshes again.
CREATE TABLE view_state (
    id integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    data_version text NOT NULL,
    refreshed_at timestamptz NOT NULL DEFAULT now()
);
-- Warehouses loaded by earlier releases refreshed their views after every load.
INSERT INTO view_state (data_version)
SELECT COALESCE(string_agg(table_name || ':' || gold_version, ',' ORDER BY table_name), '')
  FROM load_state;

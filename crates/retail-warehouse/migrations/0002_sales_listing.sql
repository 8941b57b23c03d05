-- Listing sales newest first (GET /api/v1/sales) pages through this index instead of sorting
-- the facts.
CREATE INDEX fact_sales_listing ON fact_sales (invoice_date, transaction_id);

#!/usr/bin/env python3
"""The data contract's bronze → silver → gold in one DuckDB script, writing Parquet.

A straightforward DuckDB version of what `retail ingest` + `retail pipeline run` do on the
Online Retail daily files, written as a data engineer would without the platform: read every
CSV as text, keep bronze with its lineage, normalise and check by the contract, quarantine with
every reason, drop duplicates (first ingested kept), derive the transaction id (SHA-256 of the
eight normalised fields), the exact amount, the line type, the region and the quality score, and
build the star schema and the four aggregates. Every table is written as Parquet (silver
partitioned by region and invoice month, as the platform's). `scripts/vs-duckdb.py` times it
beside the platform and checks that both agree on the counts and the money.

    python3 scripts/duckdb_pipeline.py --data DIR --out DIR [--threads N]

Prints one JSON object of counts on standard output. Needs only the `duckdb` package.
"""
import argparse
import json
import os
import shutil

import duckdb

# (name, aliases, ISO code, region): the platform's table (retail_domain::country).
COUNTRIES = [
    ("United Kingdom", ["UK", "Great Britain", "GB"], "GB", "united_kingdom"),
    ("Germany", [], "DE", "western_europe"), ("France", [], "FR", "western_europe"),
    ("Ireland", ["EIRE", "Republic of Ireland"], "IE", "northern_europe"),
    ("Spain", [], "ES", "southern_europe"),
    ("Netherlands", ["The Netherlands", "Holland"], "NL", "western_europe"),
    ("Belgium", [], "BE", "western_europe"), ("Switzerland", [], "CH", "western_europe"),
    ("Portugal", [], "PT", "southern_europe"), ("Australia", [], "AU", "asia_pacific"),
    ("Norway", [], "NO", "northern_europe"), ("Italy", [], "IT", "southern_europe"),
    ("Channel Islands", [], None, "northern_europe"), ("Finland", [], "FI", "northern_europe"),
    ("Cyprus", [], "CY", "southern_europe"), ("Sweden", [], "SE", "northern_europe"),
    ("Unspecified", [], None, "other"), ("Austria", [], "AT", "western_europe"),
    ("Denmark", [], "DK", "northern_europe"), ("Japan", [], "JP", "asia_pacific"),
    ("Poland", [], "PL", "eastern_europe"), ("Israel", [], "IL", "middle_east"),
    ("United States", ["USA", "US", "United States of America"], "US", "americas"),
    ("Hong Kong", [], "HK", "asia_pacific"), ("Singapore", [], "SG", "asia_pacific"),
    ("Iceland", [], "IS", "northern_europe"), ("Canada", [], "CA", "americas"),
    ("Greece", [], "GR", "southern_europe"), ("Malta", [], "MT", "southern_europe"),
    ("United Arab Emirates", ["UAE"], "AE", "middle_east"),
    ("European Community", [], None, "western_europe"),
    ("South Africa", ["RSA"], "ZA", "africa"), ("Lebanon", [], "LB", "middle_east"),
    ("Lithuania", [], "LT", "northern_europe"), ("Brazil", [], "BR", "americas"),
    ("Czech Republic", ["Czechia"], "CZ", "eastern_europe"),
    ("Bahrain", [], "BH", "middle_east"), ("Saudi Arabia", [], "SA", "middle_east"),
]

LINE_TYPE = """CASE
      WHEN stock_code IN ('POST', 'DOT', 'C2') THEN 'shipping'
      WHEN stock_code = 'D' THEN 'discount'
      WHEN stock_code = 'M' THEN 'manual'
      WHEN stock_code = 'S' THEN 'sample'
      WHEN stock_code IN ('BANK CHARGES', 'AMAZONFEE', 'CRUK') THEN 'fee'
      WHEN stock_code = 'B' THEN 'adjustment'
      WHEN stock_code LIKE 'GIFT\\_%' ESCAPE '\\' THEN 'gift_voucher'
      ELSE 'product' END"""

SEGMENT = """CASE
      WHEN r_score <= 2 AND f_score <= 2 THEN 'Hibernating'
      WHEN r_score <= 2 AND f_score <= 4 THEN 'At Risk'
      WHEN r_score <= 2 THEN 'Can''t Lose Them'
      WHEN r_score = 3 AND f_score <= 2 THEN 'About to Sleep'
      WHEN r_score = 3 AND f_score = 3 THEN 'Need Attention'
      WHEN r_score IN (3, 4) AND f_score >= 4 THEN 'Loyal Customers'
      WHEN r_score = 4 AND f_score = 1 THEN 'Promising'
      WHEN r_score = 5 AND f_score = 1 THEN 'New Customers'
      WHEN r_score IN (4, 5) AND f_score IN (2, 3) THEN 'Potential Loyalists'
      ELSE 'Champions' END"""


def sql_text(value):
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


def run(data, out, threads):
    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    country_rows = []
    for name, aliases, code, region in COUNTRIES:
        for spelling in [name, *aliases]:
            country_rows.append(
                f"({sql_text(spelling.upper())}, {sql_text(name)}, {sql_text(code)}, '{region}')"
            )
    con.execute(
        "CREATE TABLE countries (spelling VARCHAR, name VARCHAR, code VARCHAR, region VARCHAR);"
        f"INSERT INTO countries VALUES {', '.join(country_rows)}"
    )
    glob = os.path.join(data, "*.csv")
    # Bronze: every record as text, with its lineage (file, row number, ingestion time, a hash
    # of the eight raw fields).
    con.execute(f"""
CREATE TABLE raw AS
SELECT * FROM read_csv('{glob}', all_varchar = true, header = true, filename = true,
                       quote = '"', escape = '"')""")
    con.execute("""
CREATE TABLE bronze AS
SELECT InvoiceNo AS invoice, StockCode AS stock_code, Description AS description,
       Quantity AS quantity, InvoiceDate AS invoice_date, UnitPrice AS unit_price,
       CustomerID AS customer_id, Country AS country,
       uuid() AS ingestion_id, 'file' AS source_system, filename AS source_location,
       CAST(rowid - min(rowid) OVER (PARTITION BY filename) + 1 AS BIGINT) AS row_number,
       rowid AS arrival,
       CAST(now() AS TIMESTAMP) AS ingested_at,
       md5(concat_ws(chr(31), coalesce(InvoiceNo, ''), coalesce(StockCode, ''),
           coalesce(Description, ''), coalesce(Quantity, ''), coalesce(InvoiceDate, ''),
           coalesce(UnitPrice, ''), coalesce(CustomerID, ''), coalesce(Country, ''))) AS record_hash
  FROM raw""")
    # Silver: the contract's normalisation and rules, every broken rule named.
    con.execute(f"""
CREATE TABLE normalised AS
SELECT b.*,
       trim(b.invoice) AS n_invoice,
       upper(trim(b.stock_code)) AS n_stock_code,
       nullif(regexp_replace(trim(regexp_replace(coalesce(b.description, ''),
              '[\\x00-\\x1F\\x7F]', ' ', 'g')), '\\s+', ' ', 'g'), '') AS n_description,
       TRY_CAST(trim(b.quantity) AS BIGINT) AS n_quantity,
       try_strptime(trim(b.invoice_date), ['%Y-%m-%d %H:%M:%S', '%Y-%m-%d %H:%M',
                    '%Y-%m-%dT%H:%M:%S', '%m/%d/%Y %H:%M']) AS n_invoice_date,
       CASE WHEN regexp_full_match(trim(b.unit_price), '-?[0-9]+(\\.[0-9]{{1,3}})?')
            THEN CAST(trim(b.unit_price) AS DECIMAL(18, 3)) END AS n_unit_price,
       nullif(regexp_replace(trim(coalesce(b.customer_id, '')), '\\.0$', ''), '') AS n_customer_id,
       trim(b.country) AS n_country
  FROM bronze b""")
    con.execute(f"""
CREATE TABLE checked AS
SELECT n.*, c.name AS country_name, c.code AS country_code,
       coalesce(c.region, 'other') AS region,
       list_filter([
         CASE WHEN coalesce(n_invoice, '') = '' THEN 'missing_invoice' END,
         CASE WHEN coalesce(n_stock_code, '') = '' THEN 'missing_stock_code' END,
         CASE WHEN coalesce(trim(quantity), '') = '' OR n_quantity IS NULL
              THEN 'invalid_quantity' END,
         CASE WHEN n_quantity = 0 THEN 'zero_quantity' END,
         CASE WHEN n_invoice_date IS NULL THEN 'invalid_invoice_date' END,
         CASE WHEN n_invoice_date < TIMESTAMP '2000-01-01'
                OR n_invoice_date > ingested_at + INTERVAL 1 DAY
              THEN 'implausible_invoice_date' END,
         CASE WHEN n_unit_price IS NULL THEN 'invalid_unit_price' END,
         CASE WHEN n_unit_price < 0 THEN 'negative_unit_price' END,
         CASE WHEN coalesce(n_country, '') = '' THEN 'missing_country' END,
         CASE WHEN regexp_matches(coalesce(n_invoice, '') || coalesce(n_stock_code, '')
                    || coalesce(n_customer_id, '') || coalesce(n_country, ''),
                    '[\\x00-\\x1F\\x7F]')
                OR length(n_invoice) > 50 OR length(n_stock_code) > 50
                OR length(n_customer_id) > 50 OR length(n_country) > 100
                OR length(n_description) > 500
              THEN 'invalid_text' END
       ], lambda r: r IS NOT NULL) AS reasons
  FROM normalised n
  LEFT JOIN countries c ON c.spelling = upper(n.n_country)""")
    con.execute(f"""
CREATE TABLE kept AS
SELECT k.*,
       row_number() OVER (PARTITION BY n_invoice, n_stock_code, n_description, n_quantity,
                          n_invoice_date, n_unit_price, n_customer_id, n_country
                          ORDER BY arrival) AS copy
  FROM checked k
 WHERE len(reasons) = 0""")
    con.execute(f"""
CREATE TABLE silver AS
SELECT sha256(concat_ws(chr(31), n_invoice, n_stock_code, coalesce(n_description, ''),
              CAST(n_quantity AS VARCHAR), strftime(n_invoice_date, '%Y-%m-%d %H:%M:%S'),
              CAST(n_unit_price AS VARCHAR), coalesce(n_customer_id, ''), n_country))
         AS transaction_id,
       n_invoice AS invoice, n_stock_code AS stock_code, n_description AS description,
       n_quantity AS quantity, n_invoice_date AS invoice_date, n_unit_price AS unit_price,
       n_customer_id AS customer_id, n_country AS country, country_name, country_code, region,
       CAST(n_quantity * n_unit_price AS DECIMAL(18, 3)) AS total_amount,
       n_quantity < 0 AS is_return, starts_with(n_invoice, 'C') AS is_cancellation,
       {LINE_TYPE.replace('stock_code', 'n_stock_code')} AS line_type,
       strftime(n_invoice_date, '%Y-%m') AS invoice_month,
       round(CAST((0.60 + 0.05 * (6 + (n_description IS NOT NULL)::INT
                                    + (n_customer_id IS NOT NULL)::INT))
                  * (0.70 + 0.10 * ((n_unit_price > 0)::INT + 1
                                    + (n_customer_id IS NULL OR length(n_customer_id) >= 5)::INT))
                  * (0.70 + 0.15 * (1 + (country_code IS NOT NULL)::INT)) AS DECIMAL(12, 6)), 2)
         AS data_quality_score,
       ingestion_id, source_location, row_number, ingested_at, arrival
  FROM kept
 WHERE copy = 1""")
    # Gold: the star schema and the aggregates.
    con.execute("""
CREATE TABLE dim_country AS
SELECT CAST(row_number() OVER (ORDER BY country_name) AS INTEGER) AS country_key,
       country_name, country_code, region
  FROM (SELECT DISTINCT country_name, country_code, region FROM silver)""")
    con.execute(f"""
CREATE TABLE dim_product AS
WITH described AS (
  SELECT stock_code, description, count(*) AS n FROM silver
   WHERE description IS NOT NULL GROUP BY stock_code, description),
best AS (
  SELECT stock_code, arg_min(description, (-n, description)) AS description
    FROM described GROUP BY stock_code)
SELECT CAST(row_number() OVER (ORDER BY s.stock_code) AS INTEGER) AS product_key,
       s.stock_code, b.description, {LINE_TYPE.replace('stock_code', 's.stock_code')} AS line_type,
       s.first_sale, s.last_sale
  FROM (SELECT stock_code, CAST(min(invoice_date) AS DATE) AS first_sale,
               CAST(max(invoice_date) AS DATE) AS last_sale
          FROM silver GROUP BY stock_code) s
  LEFT JOIN best b ON b.stock_code = s.stock_code""")
    con.execute("""
CREATE TABLE dim_customer AS
WITH ordered AS (
  SELECT customer_id, country_name, invoice_date,
         lag(country_name) OVER (PARTITION BY customer_id
                                 ORDER BY invoice_date, transaction_id) AS previous
    FROM silver WHERE customer_id IS NOT NULL),
versions AS (
  SELECT customer_id, country_name, invoice_date AS valid_from
    FROM ordered WHERE previous IS NULL OR previous <> country_name),
ranged AS (
  SELECT customer_id, country_name, valid_from,
         lead(valid_from) OVER (PARTITION BY customer_id ORDER BY valid_from) AS valid_to
    FROM versions)
SELECT 0 AS customer_key, NULL AS customer_id, NULL AS country_name,
       CAST(NULL AS TIMESTAMP) AS valid_from, CAST(NULL AS TIMESTAMP) AS valid_to,
       true AS is_current
UNION ALL
SELECT CAST(row_number() OVER (ORDER BY customer_id, valid_from) AS INTEGER), customer_id,
       country_name, valid_from, valid_to, valid_to IS NULL
  FROM ranged""")
    con.execute("""
CREATE TABLE dim_date AS
SELECT CAST(strftime(d, '%Y%m%d') AS INTEGER) AS date_key, CAST(d AS DATE) AS date,
       year(d) AS year, quarter(d) AS quarter, month(d) AS month,
       monthname(d) AS month_name, weekofyear(d) AS iso_week, isodow(d) AS day_of_week,
       dayname(d) AS day_name, isodow(d) >= 6 AS is_weekend
  FROM (SELECT unnest(generate_series(CAST(min(invoice_date) AS DATE),
                                      CAST(max(invoice_date) AS DATE), INTERVAL 1 DAY)) AS d
          FROM silver)""")
    con.execute("""
CREATE TABLE fact_sales AS
SELECT s.transaction_id, CAST(strftime(s.invoice_date, '%Y%m%d') AS INTEGER) AS date_key,
       coalesce(c.customer_key, 0) AS customer_key, p.product_key, k.country_key,
       s.invoice, s.invoice_date, s.quantity, s.unit_price, s.total_amount, s.is_return,
       s.is_cancellation, s.line_type, s.data_quality_score
  FROM silver s
  JOIN dim_product p ON p.stock_code = s.stock_code
  JOIN dim_country k ON k.country_name = s.country_name
  LEFT JOIN dim_customer c ON c.customer_id = s.customer_id
       AND s.invoice_date >= c.valid_from
       AND (c.valid_to IS NULL OR s.invoice_date < c.valid_to)""")
    con.execute("""
CREATE TABLE daily_sales AS
SELECT CAST(strftime(invoice_date, '%Y%m%d') AS INTEGER) AS date_key, country_name,
       coalesce(sum(total_amount) FILTER (WHERE quantity > 0), 0) AS gross_revenue,
       -coalesce(sum(total_amount) FILTER (WHERE quantity < 0), 0) AS returns_amount,
       sum(total_amount) AS net_revenue,
       count(DISTINCT invoice) FILTER (WHERE quantity > 0 AND NOT is_cancellation) AS orders,
       coalesce(sum(quantity) FILTER (WHERE quantity > 0), 0) AS units,
       count(DISTINCT customer_id) AS customers, count(*) AS lines
  FROM silver GROUP BY ALL""")
    con.execute("""
CREATE TABLE product_monthly AS
SELECT invoice_month AS month, stock_code, sum(total_amount) AS net_revenue,
       coalesce(sum(quantity) FILTER (WHERE quantity > 0), 0) AS units_sold,
       coalesce(-sum(quantity) FILTER (WHERE quantity < 0), 0) AS units_returned,
       count(DISTINCT invoice) FILTER (WHERE quantity > 0 AND NOT is_cancellation) AS orders,
       CASE WHEN units_sold > 0 THEN units_returned / units_sold END AS return_rate
  FROM silver GROUP BY ALL""")
    con.execute(f"""
CREATE TABLE customer_rfm AS
WITH activity AS (
  SELECT customer_id,
         CAST(max(invoice_date) FILTER (WHERE quantity > 0) AS DATE) AS last_purchase,
         count(DISTINCT invoice) FILTER (WHERE quantity > 0 AND NOT is_cancellation)
           AS frequency,
         sum(total_amount) AS monetary
    FROM silver WHERE customer_id IS NOT NULL GROUP BY customer_id),
reference AS (SELECT CAST(max(invoice_date) AS DATE) + 1 AS day FROM silver),
scored AS (
  SELECT a.customer_id, a.last_purchase, reference.day - a.last_purchase AS recency_days,
         a.frequency, a.monetary
    FROM activity a, reference WHERE a.last_purchase IS NOT NULL),
ranked AS (
  SELECT *, ntile(5) OVER (ORDER BY recency_days DESC, customer_id) AS r_score,
         ntile(5) OVER (ORDER BY frequency, customer_id) AS f_score,
         ntile(5) OVER (ORDER BY monetary, customer_id) AS m_score
    FROM scored)
SELECT *, {SEGMENT} AS segment FROM ranked""")
    con.execute("""
CREATE TABLE cohort_retention AS
WITH purchases AS (
  SELECT DISTINCT customer_id, date_trunc('month', invoice_date) AS month FROM silver
   WHERE customer_id IS NOT NULL AND quantity > 0 AND NOT is_cancellation),
cohorts AS (SELECT customer_id, min(month) AS cohort FROM purchases GROUP BY customer_id),
sizes AS (SELECT cohort, count(*) AS size FROM cohorts GROUP BY cohort),
active AS (
  SELECT c.cohort, datediff('month', c.cohort, p.month) AS month_offset,
         count(DISTINCT p.customer_id) AS active
    FROM purchases p JOIN cohorts c USING (customer_id) GROUP BY ALL)
SELECT CAST(a.cohort AS DATE) AS cohort_month, a.month_offset, s.size AS cohort_size,
       a.active AS active_customers, a.active / s.size AS retention
  FROM active a JOIN sizes s USING (cohort)""")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)

    def write(query, name, partitioned=False):
        path = os.path.join(out, name if partitioned else f"{name}.parquet")
        extra = ", PARTITION_BY (region, invoice_month)" if partitioned else ""
        con.execute(f"COPY ({query}) TO '{path}' (FORMAT parquet{extra})")

    write("SELECT * EXCLUDE (arrival) FROM bronze", "bronze")
    write("SELECT * EXCLUDE (arrival) FROM silver", "silver", partitioned=True)
    write("SELECT * EXCLUDE (arrival, n_invoice, n_stock_code, n_description, n_quantity, "
          "n_invoice_date, n_unit_price, n_customer_id, n_country) "
          "FROM checked WHERE len(reasons) > 0", "quarantine")
    write("SELECT * EXCLUDE (arrival, copy) FROM kept WHERE copy > 1", "duplicates")
    for table in ["dim_country", "dim_product", "dim_customer", "dim_date", "fact_sales",
                  "daily_sales", "product_monthly", "customer_rfm", "cohort_retention"]:
        write(f"SELECT * FROM {table}", table)
    counts = {name: con.execute(f"SELECT count(*) FROM {query}").fetchone()[0] for name, query in [
        ("bronze", "bronze"), ("silver", "silver"),
        ("quarantine", "checked WHERE len(reasons) > 0"), ("duplicates", "kept WHERE copy > 1"),
        ("fact_sales", "fact_sales"), ("dim_date", "dim_date"), ("dim_country", "dim_country"),
        ("dim_product", "dim_product"), ("dim_customer", "dim_customer"),
        ("daily_sales", "daily_sales"), ("product_monthly", "product_monthly"),
        ("customer_rfm", "customer_rfm"), ("cohort_retention", "cohort_retention")]}
    counts["net_revenue"] = str(con.execute("SELECT sum(total_amount) FROM fact_sales").fetchone()[0])
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="folder of daily CSV files")
    parser.add_argument("--out", required=True, help="folder the Parquet files go to (replaced)")
    parser.add_argument("--threads", type=int, help="DuckDB threads (default: every core)")
    args = parser.parse_args()
    print(json.dumps(run(args.data, args.out, args.threads)))


if __name__ == "__main__":
    main()

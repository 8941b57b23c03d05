-- The star schema and the aggregates of the gold layer, as DATA_CONTRACT.md names them.
-- Column names and order follow the gold Delta tables, so loads copy columns one to one.

CREATE TABLE dim_date (
    date_key    integer PRIMARY KEY,
    date        date NOT NULL UNIQUE,
    year        integer NOT NULL,
    quarter     integer NOT NULL,
    month       integer NOT NULL,
    month_name  text NOT NULL,
    iso_year    integer NOT NULL,
    iso_week    integer NOT NULL,
    day_of_week integer NOT NULL,
    day_name    text NOT NULL,
    is_weekend  boolean NOT NULL
);

CREATE TABLE dim_country (
    country_key  bigint PRIMARY KEY,
    country_name text NOT NULL UNIQUE,
    country_code text,
    region       text NOT NULL
);

CREATE TABLE dim_product (
    product_key     bigint PRIMARY KEY,
    stock_code      text NOT NULL UNIQUE,
    description     text,
    line_type       text NOT NULL,
    first_sale_date date,
    last_sale_date  date
);

-- Type 2: one row per version of a customer's country; key 0 is the unknown (guest) member.
CREATE TABLE dim_customer (
    customer_key bigint PRIMARY KEY,
    customer_id  text NOT NULL,
    country_name text NOT NULL,
    country_key  bigint NOT NULL,
    version      integer NOT NULL,
    valid_from   timestamp NOT NULL,
    valid_to     timestamp,
    is_current   boolean NOT NULL,
    UNIQUE (customer_id, version)
);
CREATE INDEX dim_customer_current ON dim_customer (customer_id) WHERE is_current;

-- Monthly range partitions are created by each load as data arrives; the default partition
-- catches anything outside them (it stays empty unless rows are written by hand).
CREATE TABLE fact_sales (
    transaction_id     text COLLATE "C" NOT NULL,
    date_key           integer NOT NULL,
    customer_key       bigint NOT NULL,
    product_key        bigint NOT NULL,
    country_key        bigint NOT NULL,
    invoice            text NOT NULL,
    invoice_date       timestamp NOT NULL,
    quantity           bigint NOT NULL,
    unit_price         numeric(18, 3) NOT NULL,
    total_amount       numeric(18, 3) NOT NULL,
    is_return          boolean NOT NULL,
    is_cancellation    boolean NOT NULL,
    line_type          text NOT NULL,
    data_quality_score numeric(3, 2) NOT NULL,
    PRIMARY KEY (transaction_id, invoice_date)
) PARTITION BY RANGE (invoice_date);
CREATE TABLE fact_sales_default PARTITION OF fact_sales DEFAULT;

-- A customer's history, newest first.
CREATE INDEX fact_sales_customer_date ON fact_sales (customer_key, date_key);
-- A product's sales by country.
CREATE INDEX fact_sales_product_country ON fact_sales (product_key, country_key);
-- Returns are few (about 2 % of lines): a partial index keeps them at hand.
CREATE INDEX fact_sales_returns ON fact_sales (date_key, product_key) WHERE is_return;

CREATE TABLE daily_sales (
    date           date NOT NULL,
    date_key       integer NOT NULL,
    country_name   text NOT NULL,
    gross_revenue  numeric(18, 3) NOT NULL,
    returns_amount numeric(18, 3) NOT NULL,
    net_revenue    numeric(18, 3) NOT NULL,
    orders         bigint NOT NULL,
    units          bigint NOT NULL,
    customers      bigint NOT NULL,
    lines          bigint NOT NULL,
    PRIMARY KEY (date_key, country_name)
);

CREATE TABLE product_monthly (
    month          text NOT NULL,
    stock_code     text NOT NULL,
    net_revenue    numeric(18, 3) NOT NULL,
    units_sold     bigint NOT NULL,
    units_returned bigint NOT NULL,
    orders         bigint NOT NULL,
    return_rate    double precision,
    PRIMARY KEY (month, stock_code)
);
CREATE INDEX product_monthly_stock ON product_monthly (stock_code, month);

CREATE TABLE customer_rfm (
    customer_id        text PRIMARY KEY,
    reference_date     date NOT NULL,
    last_purchase_date date NOT NULL,
    recency_days       bigint NOT NULL,
    frequency          bigint NOT NULL,
    monetary           numeric(18, 3) NOT NULL,
    r_score            integer NOT NULL,
    f_score            integer NOT NULL,
    m_score            integer NOT NULL,
    segment            text NOT NULL
);

CREATE TABLE cohort_retention (
    cohort_month     text NOT NULL,
    month_offset     integer NOT NULL,
    activity_month   text NOT NULL,
    cohort_size      bigint NOT NULL,
    active_customers bigint NOT NULL,
    retention        double precision NOT NULL,
    PRIMARY KEY (cohort_month, month_offset)
);

-- Load bookkeeping: the gold version each table was loaded from, and the fingerprint of each
-- slice (a day of facts, a month of product sales) so the next load rewrites only changes.
CREATE TABLE load_state (
    table_name   text PRIMARY KEY,
    gold_version bigint NOT NULL,
    rows         bigint NOT NULL,
    loaded_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE load_slices (
    table_name  text NOT NULL,
    slice       text NOT NULL,
    fingerprint bigint NOT NULL,
    rows        bigint NOT NULL,
    PRIMARY KEY (table_name, slice)
);

-- The summary views the code defines, with a hash of their SQL, so that a changed definition
-- is rebuilt at start-up.
CREATE TABLE summary_views (
    view_name text PRIMARY KEY,
    sql_hash  text NOT NULL
);

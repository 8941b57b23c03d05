//! Deterministic synthetic retail transactions in the shape of the UCI *Online Retail* CSV files.
//!
//! [`write_daily_csv_files`] writes one CSV file per day (`YYYY-MM-DD.csv`) with the header
//! `InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country`, ISO
//! timestamps (`2010-12-01 08:26:00`), prices printed like the real exports (`2.55`, `2.1`, `18.0`,
//! `0.001`) and customer ids like `17850.0` (empty for a guest sale). It is meant for scale tests
//! and demos: the same options always give byte-identical files, and rows are streamed to disk one
//! invoice at a time, so memory does not grow with the number of rows.
//!
//! The shape mimics the real data set:
//!
//! - a catalogue of products (`85123A`, `22423`, ...) whose descriptions are built from word lists
//!   (a few with commas, trailing or doubled spaces, lower-case variant suffixes), with skewed,
//!   product-specific prices (plus bulk and dotcom prices) and skewed popularity;
//! - customers (ids from `12346` upwards) who join over time, about 90% from the United Kingdom, the
//!   rest spread over the real countries; a small share move country once;
//! - invoices numbered from `536365` upwards with 1 to 40 lines, one customer, country and
//!   timestamp each, at shop hours; rows per day follow a weekday pattern (no Saturdays), a
//!   Christmas closure and growth towards November;
//! - about 25% guest lines (no customer id), about 2% cancellation lines (invoice `C...`, negative
//!   quantities copying lines of an earlier invoice of the same customer), stock adjustments
//!   (negative quantity, price 0, notes such as `damaged`), free gifts at price 0, a few lines at
//!   `0.001`, non-product lines (`POST`, `DOT`, `C2`, `M`, `D`, `S`, `BANK CHARGES`, `AMAZONFEE`,
//!   `CRUK`, `B`, `gift_0001_20`, ...);
//! - about 1% exact duplicate lines (a line of the same invoice written again) and about 0.05% bad
//!   rows (negative price, quantity 0, missing stock code, unparseable date, quantity `abc`,
//!   missing country; one kind after the other).
//!
//! With [`GenerateOptions::anomaly_days`], known days are made unusual on purpose, to validate
//! anomaly detection: [`planted_anomalies`] says which days and how (four times the usual rows,
//! a quarter of them, or a fifth of the day's rows broken).

use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::path::Path;

use chrono::{Datelike, Days, NaiveDate, Weekday};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Options of one generation run.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Number of data rows to write in all (headers not counted).
    pub rows: u64,
    /// Seed of the random generator: the same options give byte-identical files.
    pub seed: u64,
    /// First day of the generated period.
    pub start: NaiveDate,
    /// Number of days of the period, starting at `start`.
    pub days: u32,
    /// Trading days made unusual on purpose (see [`planted_anomalies`]); 0 for none.
    pub anomaly_days: u32,
}

/// How a planted day is unusual.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantedKind {
    /// Four times the day's usual rows.
    Surge,
    /// A quarter of the day's usual rows.
    Drop,
    /// About a fifth of the day's rows break a required rule (quarantined).
    BadData,
}

/// A day made unusual on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlantedAnomaly {
    /// The day.
    pub date: NaiveDate,
    /// How.
    pub kind: PlantedKind,
}

/// Trading days before the first planted day: a detector needs some weeks of history.
const PLANT_AFTER_DAYS: u32 = 56;

/// The days [`GenerateOptions::anomaly_days`] plants: open days after the first eight weeks,
/// spread evenly over the rest of the period, each shifted by up to two days (from the seed),
/// their kinds in turn surge, drop, bad data.
pub fn planted_anomalies(opts: &GenerateOptions) -> Vec<PlantedAnomaly> {
    let open: Vec<u32> = (PLANT_AFTER_DAYS..opts.days)
        .filter(|index| base_day_weight(opts, *index) > 0)
        .collect();
    let wanted = (opts.anomaly_days as usize).min(open.len() / 8);
    if wanted == 0 {
        return Vec::new();
    }
    let step = open.len() / wanted;
    (0..wanted)
        .map(|i| {
            let shift = (splitmix64(opts.seed ^ 0xa110_ca1e ^ i as u64) % 5) as usize;
            let index = open[(i * step + step / 2 + shift)
                .saturating_sub(2)
                .min(open.len() - 1)];
            PlantedAnomaly {
                date: opts.start + Days::new(u64::from(index)),
                kind: [PlantedKind::Surge, PlantedKind::Drop, PlantedKind::BadData][i % 3],
            }
        })
        .collect()
}

impl Default for GenerateOptions {
    /// 100,000 rows, seed 42, one year from 2010-12-01 (like the UCI data set).
    fn default() -> Self {
        Self {
            rows: 100_000,
            seed: 42,
            start: NaiveDate::from_ymd_opt(2010, 12, 1).expect("2010-12-01 is a valid date"),
            days: 365,
            anomaly_days: 0,
        }
    }
}

/// What a run wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateSummary {
    /// Data rows written (always the requested number).
    pub rows: u64,
    /// Files written (one per day that has rows).
    pub files: u64,
    /// Distinct invoice numbers written (sales, cancellations and adjustments).
    pub invoices: u64,
    /// Rows deliberately broken (they break a required rule of the data contract).
    pub bad_rows: u64,
}

/// Writes one CSV file per day (`YYYY-MM-DD.csv`, header
/// `InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country`) into
/// `dir` (created if missing), `opts.rows` data rows in all, spread over `opts.days` days.
///
/// Files exist only for days with rows; an existing file of the same name is replaced, other files
/// in `dir` are left alone. The same options give byte-identical files.
///
/// # Errors
///
/// `InvalidInput` when rows are asked for over zero days or when the period leaves the calendar;
/// any error from creating the directory or writing the files.
pub fn write_daily_csv_files(dir: &Path, opts: &GenerateOptions) -> io::Result<GenerateSummary> {
    fs::create_dir_all(dir)?;
    let mut summary = GenerateSummary {
        rows: 0,
        files: 0,
        invoices: 0,
        bad_rows: 0,
    };
    if opts.rows == 0 {
        return Ok(summary);
    }
    if opts.days == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot spread rows over zero days",
        ));
    }
    let out_of_range = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the period leaves the supported calendar",
        )
    };
    opts.start
        .checked_add_days(Days::new(u64::from(opts.days)))
        .ok_or_else(out_of_range)?;

    let plan = DayPlan::new(opts);
    let mut generator = Generator::new(opts, plan.active_days);
    let mut cumulative_weight: u128 = 0;
    let mut rows_before: u64 = 0;
    for index in 0..opts.days {
        let date = opts.start + Days::new(u64::from(index));
        cumulative_weight += plan.weight(opts, index);
        let rows_through = u128::from(opts.rows) * cumulative_weight / plan.total_weight;
        let rows_through = u64::try_from(rows_through).expect("a share of a u64 fits in a u64");
        let quota = rows_through - rows_before;
        rows_before = rows_through;
        if quota == 0 {
            continue;
        }
        let name = date.format("%Y-%m-%d").to_string();
        let file = File::create(dir.join(format!("{name}.csv")))?;
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .buffer_capacity(1 << 17)
            .from_writer(file);
        writer.write_record(HEADER)?;
        generator.burst = plan.planted_on(date) == Some(PlantedKind::BadData);
        generator.write_day(&mut writer, &name, quota)?;
        writer.flush()?;
        summary.files += 1;
    }
    summary.rows = generator.rows_written;
    summary.invoices = generator.invoices;
    summary.bad_rows = generator.bad_rows;
    Ok(summary)
}

const HEADER: [&str; 8] = [
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
];

/// First invoice number of the real data set.
const FIRST_INVOICE: u64 = 536_365;
/// Lowest customer id of the real data set, and how many ids its range spans.
const FIRST_CUSTOMER_ID: u64 = 12_346;
const CUSTOMER_ID_SPAN: u64 = 5_942;
const MAX_CUSTOMERS: u64 = 500_000;
const MAX_PRODUCTS: u64 = 4_000;

/// Chance per line (after the first) of writing an earlier line of the invoice again.
const P_DUPLICATE: f64 = 0.0105;
/// Rows between two broken rows: uniform in this range, so about one row in 2,000 (0.05%).
const BAD_GAP: std::ops::Range<u64> = 1_000..3_000;
/// Chances per invoice of the invoice kinds (the rest are sales).
const P_CANCELLATION: f64 = 0.125;
const P_ADJUSTMENT: f64 = 0.02;
const P_SPECIAL_CREDIT: f64 = 0.012;
/// Chance that a sale is a guest sale.
const P_GUEST: f64 = 0.26;
/// Share of customers who move country once.
const P_MOVER: f64 = 0.03;

/// Lines of the real data per hour of the day, 07:00 to 20:59.
const HOUR_WEIGHTS: [(u32, u64); 14] = [
    (7, 383),
    (8, 8_909),
    (9, 34_332),
    (10, 49_037),
    (11, 57_674),
    (12, 78_709),
    (13, 72_259),
    (14, 67_471),
    (15, 77_519),
    (16, 54_516),
    (17, 28_509),
    (18, 7_974),
    (19, 3_705),
    (20, 871),
];

/// Rows per day relative to January (per mille), by month of the year.
const MONTH_FACTORS: [u64; 12] = [
    1000, 850, 970, 1000, 1050, 1000, 1080, 970, 1380, 1660, 2300, 1600,
];

/// Quantities of product lines and their weights (from the real data).
const QUANTITIES: [(i32, u32); 40] = [
    (1, 2740),
    (2, 1510),
    (12, 1130),
    (6, 750),
    (4, 710),
    (3, 690),
    (24, 440),
    (10, 410),
    (8, 240),
    (5, 220),
    (48, 110),
    (25, 95),
    (20, 93),
    (16, 79),
    (36, 71),
    (7, 54),
    (9, 38),
    (72, 36),
    (100, 34),
    (96, 34),
    (18, 33),
    (30, 22),
    (40, 20),
    (32, 19),
    (144, 19),
    (11, 18),
    (50, 17),
    (15, 15),
    (60, 12),
    (120, 11),
    (200, 8),
    (288, 6),
    (192, 5),
    (160, 4),
    (480, 3),
    (400, 3),
    (600, 2),
    (1000, 2),
    (2400, 1),
    (4800, 1),
];

/// Quantities of expensive products (10.00 and more).
const PRICEY_QUANTITIES: [(i32, u32); 6] = [(1, 60), (2, 24), (3, 7), (4, 6), (6, 2), (8, 1)];

/// Quantities of guest (dotcom) lines.
const GUEST_QUANTITIES: [(i32, u32); 7] =
    [(1, 62), (2, 20), (3, 7), (4, 4), (5, 2), (6, 3), (10, 2)];

/// Quantities of stock adjustments (written negative).
const ADJUSTMENT_QUANTITIES: [(i32, u32); 9] = [
    (1, 20),
    (2, 12),
    (3, 8),
    (4, 6),
    (6, 8),
    (10, 10),
    (12, 10),
    (24, 8),
    (100, 4),
];

/// Product prices (in thousandths) at quantiles of the real per-product price distribution.
const PRICE_QUANTILES: [(f64, f64); 17] = [
    (0.0, 100.0),
    (0.02, 290.0),
    (0.05, 390.0),
    (0.10, 420.0),
    (0.20, 850.0),
    (0.30, 1_250.0),
    (0.40, 1_650.0),
    (0.50, 2_080.0),
    (0.60, 2_550.0),
    (0.70, 3_750.0),
    (0.80, 4_950.0),
    (0.90, 7_950.0),
    (0.95, 9_950.0),
    (0.98, 12_750.0),
    (0.99, 16_950.0),
    (0.995, 35_950.0),
    (1.0, 165_000.0),
];

/// Popular shelf prices (cents) of the real data; most product prices snap to the nearest one.
const PRICE_POINTS: [u64; 46] = [
    10, 12, 14, 15, 16, 17, 19, 21, 25, 29, 36, 39, 42, 55, 59, 65, 72, 79, 85, 95, 125, 145, 165,
    169, 195, 210, 250, 255, 295, 325, 375, 395, 425, 495, 595, 675, 795, 850, 995, 1275, 1495,
    1695, 1995, 2495, 2995, 3995,
];

const UNITED_KINGDOM: &str = "United Kingdom";

/// Countries of customers outside the United Kingdom, with weights (roughly the real customers).
const FOREIGN_COUNTRIES: [(&str, u32); 38] = [
    ("Germany", 95),
    ("France", 87),
    ("Spain", 29),
    ("Belgium", 25),
    ("Switzerland", 21),
    ("EIRE", 20),
    ("Portugal", 19),
    ("Italy", 15),
    ("Finland", 12),
    ("Norway", 10),
    ("Austria", 10),
    ("Netherlands", 9),
    ("Channel Islands", 9),
    ("Japan", 8),
    ("Sweden", 8),
    ("Unspecified", 8),
    ("Australia", 7),
    ("Cyprus", 7),
    ("Denmark", 7),
    ("Poland", 6),
    ("USA", 6),
    ("RSA", 4),
    ("Israel", 4),
    ("Greece", 4),
    ("Canada", 4),
    ("United Arab Emirates", 2),
    ("Bahrain", 2),
    ("Malta", 2),
    ("Lithuania", 2),
    ("Iceland", 2),
    ("Singapore", 2),
    ("Hong Kong", 2),
    ("Lebanon", 2),
    ("Saudi Arabia", 2),
    ("Czech Republic", 2),
    ("Brazil", 2),
    ("European Community", 2),
    ("West Indies", 1),
];

/// Countries of guest sales, with weights.
const GUEST_COUNTRIES: [(&str, u32); 8] = [
    (UNITED_KINGDOM, 9_600),
    ("EIRE", 120),
    ("Hong Kong", 60),
    ("Unspecified", 50),
    ("Switzerland", 40),
    ("France", 30),
    ("Israel", 20),
    ("Portugal", 20),
];

/// Notes written as the description of stock adjustments (empty: no description).
const ADJUSTMENT_NOTES: [&str; 16] = [
    "",
    "",
    "",
    "",
    "check",
    "damages",
    "damaged",
    "?",
    "sold as set on dotcom",
    "Damaged",
    "thrown away",
    "Unsaleable, destroyed.",
    "wet damaged",
    "smashed",
    "missing",
    "mouldy, thrown away.",
];

const COLOURS: [&str; 20] = [
    "RED",
    "PINK",
    "BLUE",
    "GREEN",
    "WHITE",
    "CREAM",
    "BLACK",
    "IVORY",
    "PURPLE",
    "ORANGE",
    "YELLOW",
    "SILVER",
    "GOLD",
    "LIGHT BLUE",
    "PASTEL PINK",
    "CHOCOLATE",
    "TURQUOISE",
    "LILAC",
    "ANTIQUE WHITE",
    "BLUE/WHITE",
];

const THEMES: [&str; 30] = [
    "RETROSPOT",
    "VINTAGE",
    "REGENCY",
    "PAISLEY",
    "SPACEBOY",
    "DOLLY GIRL",
    "WOODLAND",
    "CHRISTMAS",
    "HEART",
    "POLKADOT",
    "SKULL",
    "BIRD",
    "FLORAL",
    "LOVE",
    "ENGLISH ROSE",
    "UNION FLAG",
    "JAM MAKING",
    "PANTRY",
    "BAROQUE",
    "NEW ENGLAND",
    "ALPHABET",
    "CIRCUS PARADE",
    "DOILY",
    "RED TOADSTOOL",
    "SWALLOWS",
    "CHARLOTTE",
    "LEAF",
    "SPOTTY",
    "STRAWBERRY",
    "HANGING HEART",
];

const MATERIALS: [&str; 22] = [
    "METAL",
    "WOODEN",
    "GLASS",
    "CERAMIC",
    "ENAMEL",
    "FELTCRAFT",
    "HANGING",
    "KNITTED",
    "ZINC",
    "WICKER",
    "PAPER",
    "TIN",
    "ANTIQUE",
    "JUMBO",
    "MINI",
    "LARGE",
    "SMALL",
    "DECORATIVE",
    "FRENCH",
    "GLITTER",
    "SET/3",
    "PORCELAIN",
];

const NOUNS: [&str; 48] = [
    "T-LIGHT HOLDER",
    "LANTERN",
    "COAT HANGER",
    "HOT WATER BOTTLE",
    "LUNCH BAG",
    "SHOPPER BAG",
    "CAKE CASES",
    "CAKESTAND",
    "TEA TOWEL",
    "MUG",
    "BOWL",
    "PLATE",
    "NAPKINS",
    "DOORMAT",
    "WALL ART",
    "METAL SIGN",
    "WALL CLOCK",
    "PHOTO FRAME",
    "BUNTING",
    "GARLAND",
    "CANDLE",
    "DRAWER KNOB",
    "STORAGE JAR",
    "JEWELLERY BOX",
    "PURSE",
    "NOTEBOOK",
    "WRAP",
    "GIFT BAG",
    "CUSHION COVER",
    "WATER BOTTLE",
    "PARASOL",
    "PICNIC BASKET",
    "BIRD FEEDER",
    "BAKING SET",
    "LUNCH BOX",
    "ALARM CLOCK",
    "MIRROR",
    "KEY FOB",
    "TEASPOONS",
    "COASTERS",
    "TRAY",
    "BISCUIT TIN",
    "BUCKET",
    "WATERING CAN",
    "PEG BAG",
    "HAND WARMER",
    "CHALKBOARD",
    "DOOR STOP",
];

/// Non-product lines: stock code, description.
const SPECIALS: [(&str, &str); 16] = [
    ("POST", "POSTAGE"),
    ("DOT", "DOTCOM POSTAGE"),
    ("C2", "CARRIAGE"),
    ("M", "Manual"),
    ("D", "Discount"),
    ("S", "SAMPLES"),
    ("BANK CHARGES", "Bank Charges"),
    ("AMAZONFEE", "AMAZON FEE"),
    ("CRUK", "CRUK Commission"),
    ("B", "Adjust bad debt"),
    ("PADS", "PADS TO MATCH ALL CUSHIONS"),
    ("gift_0001_10", "Dotcomgiftshop Gift Voucher £10.00"),
    ("gift_0001_20", "Dotcomgiftshop Gift Voucher £20.00"),
    ("gift_0001_30", "Dotcomgiftshop Gift Voucher £30.00"),
    ("gift_0001_40", "Dotcomgiftshop Gift Voucher £40.00"),
    ("gift_0001_50", "Dotcomgiftshop Gift Voucher £50.00"),
];
const SP_POST: usize = 0;
const SP_DOT: usize = 1;
const SP_CARRIAGE: usize = 2;
const SP_MANUAL: usize = 3;
const SP_DISCOUNT: usize = 4;
const SP_SAMPLES: usize = 5;
const SP_BANK: usize = 6;
const SP_AMAZON: usize = 7;
const SP_CRUK: usize = 8;
const SP_BAD_DEBT: usize = 9;
const SP_PADS: usize = 10;
const SP_GIFT: usize = 11;

/// How many rows each day gets: a weight per day, rounded cumulatively (rows through a day =
/// rows × weights through that day / all weights), so that the total is exact and nothing has to
/// be stored per day.
struct DayPlan {
    total_weight: u128,
    uniform: bool,
    active_days: u64,
    planted: Vec<PlantedAnomaly>,
}

impl DayPlan {
    fn new(opts: &GenerateOptions) -> Self {
        let planted = planted_anomalies(opts);
        let mut total_weight: u128 = 0;
        let mut active_days = 0;
        for index in 0..opts.days {
            let weight = day_weight(opts, index, &planted);
            total_weight += u128::from(weight);
            active_days += u64::from(weight > 0);
        }
        if total_weight == 0 {
            // Only closed days (say a lone Saturday): spread the rows evenly instead.
            let days = u64::from(opts.days);
            Self {
                total_weight: u128::from(days),
                uniform: true,
                active_days: days,
                planted,
            }
        } else {
            Self {
                total_weight,
                uniform: false,
                active_days,
                planted,
            }
        }
    }

    fn weight(&self, opts: &GenerateOptions, index: u32) -> u128 {
        if self.uniform {
            1
        } else {
            u128::from(day_weight(opts, index, &self.planted))
        }
    }

    /// How day `date` is planted, if it is.
    fn planted_on(&self, date: NaiveDate) -> Option<PlantedKind> {
        self.planted
            .iter()
            .find(|planted| planted.date == date)
            .map(|planted| planted.kind)
    }
}

/// Relative number of rows of day `index` of the period (0 for closed days), planted surges and
/// drops included.
fn day_weight(opts: &GenerateOptions, index: u32, planted: &[PlantedAnomaly]) -> u64 {
    let weight = base_day_weight(opts, index);
    let date = opts.start + Days::new(u64::from(index));
    match planted.iter().find(|p| p.date == date).map(|p| p.kind) {
        Some(PlantedKind::Surge) => weight * 4,
        Some(PlantedKind::Drop) => weight / 4,
        Some(PlantedKind::BadData) | None => weight,
    }
}

/// Relative number of rows of day `index` of the period (0 for closed days).
fn base_day_weight(opts: &GenerateOptions, index: u32) -> u64 {
    let date = opts.start + Days::new(u64::from(index));
    let weekday = match date.weekday() {
        Weekday::Mon => 1000,
        Weekday::Tue => 1070,
        Weekday::Wed => 1000,
        Weekday::Thu => 1090,
        Weekday::Fri => 860,
        Weekday::Sat => 0,
        Weekday::Sun => 680,
    };
    let (month, day) = (date.month(), date.day());
    if (month == 12 && day >= 23) || (month == 1 && day <= 3) {
        return 0; // closed over Christmas, as the real shop was
    }
    let noise = 750 + splitmix64(opts.seed ^ (u64::from(index) << 20) ^ 0x0dd5_da7a) % 501;
    weekday * MONTH_FACTORS[date.month0() as usize] * noise
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Minute of the day (shop hours) of row `position` (from 0) of a day of `quota` rows: the day's
/// rows follow the real distribution over the hours, and later rows never get earlier times.
fn minute_of_day(position: u64, quota: u64) -> u32 {
    let total: u64 = HOUR_WEIGHTS.iter().map(|&(_, weight)| weight).sum();
    let target =
        (2 * u128::from(position) + 1) * u128::from(total) / (2 * u128::from(quota.max(1)));
    let target = u64::try_from(target).expect("below the total weight");
    let mut cumulative = 0;
    for (hour, weight) in HOUR_WEIGHTS {
        if target < cumulative + weight {
            let minute = (target - cumulative) * 60 / weight;
            return hour * 60 + u32::try_from(minute).expect("below 60");
        }
        cumulative += weight;
    }
    20 * 60 + 59
}

/// A weighted choice among a few values.
struct Table<T> {
    values: Vec<T>,
    cumulative: Vec<u32>,
}

impl<T: Copy> Table<T> {
    fn new(entries: &[(T, u32)]) -> Self {
        let mut sum = 0;
        let cumulative = entries
            .iter()
            .map(|&(_, weight)| {
                sum += weight;
                sum
            })
            .collect();
        Self {
            values: entries.iter().map(|&(value, _)| value).collect(),
            cumulative,
        }
    }

    fn pick(&self, rng: &mut StdRng) -> T {
        let total = self.cumulative.last().copied().unwrap_or(1);
        let x = rng.random_range(0..total);
        let index = self.cumulative.partition_point(|&c| c <= x);
        self.values[index.min(self.values.len() - 1)]
    }
}

/// A product or a non-product line type; prices in thousandths.
struct Item {
    code: String,
    description: String,
    price: u64,
    bulk_price: u64,
    dotcom_price: u64,
}

/// A customer: id, home country, and the country they move to once past `move_at` rows.
#[derive(Clone, Copy)]
struct Customer {
    id: u32,
    home: u8,
    moved_to: u8,
    move_at: u64,
}

/// One planned line: an item, a quantity, a price in thousandths and a note (0: the item's
/// description, n: `ADJUSTMENT_NOTES[n - 1]`).
#[derive(Clone, Copy)]
struct Line {
    item: u32,
    quantity: i32,
    price: u64,
    note: u8,
}

/// The six ways a row is broken, used one after the other.
#[derive(Clone, Copy)]
enum Defect {
    NegativePrice,
    ZeroQuantity,
    MissingStockCode,
    UnparseableDate,
    TextQuantity,
    MissingCountry,
}

const DEFECTS: [Defect; 6] = [
    Defect::NegativePrice,
    Defect::ZeroQuantity,
    Defect::MissingStockCode,
    Defect::UnparseableDate,
    Defect::TextQuantity,
    Defect::MissingCountry,
];

/// Country of index `index`: 0 is the United Kingdom, `n` is `FOREIGN_COUNTRIES[n - 1]`.
fn country_name(index: u8) -> &'static str {
    match index {
        0 => UNITED_KINGDOM,
        n => FOREIGN_COUNTRIES[usize::from(n) - 1].0,
    }
}

/// The state of one run: the catalogue, the customers, recent invoices that may be cancelled,
/// and the invoice being written.
struct Generator {
    rng: StdRng,
    items: Vec<Item>,
    products: usize,
    customers: Vec<Customer>,
    rows_total: u64,
    quantities: Table<i32>,
    pricey_quantities: Table<i32>,
    guest_quantities: Table<i32>,
    adjustment_quantities: Table<i32>,
    cancel_sizes: Table<usize>,
    postage_quantities: Table<i32>,
    postage_prices: Table<u64>,
    manual_quantities: Table<i32>,
    credit_kinds: Table<usize>,
    guest_countries: Table<&'static str>,
    /// Recent invoices of identified customers (customer index, lines) that may be cancelled.
    pool: Vec<(u32, Vec<Line>)>,
    pool_capacity: usize,
    plan: Vec<Line>,
    extras: Vec<Line>,
    written: Vec<Line>,
    next_invoice: u64,
    invoice: String,
    customer: String,
    country: &'static str,
    date: [u8; 19],
    rows_written: u64,
    invoices: u64,
    bad_rows: u64,
    /// Row number (from 0, over the whole run) of the next broken row.
    next_bad: u64,
    /// A planted bad-data day: about a fifth of its rows are broken.
    burst: bool,
}

impl Generator {
    fn new(opts: &GenerateOptions, active_days: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(opts.seed);
        let product_count = usize::try_from((opts.rows / 100 + 50).min(MAX_PRODUCTS))
            .expect("at most 4000 products");
        let mut items = build_catalogue(&mut rng, product_count);
        let products = items.len();
        items.extend(SPECIALS.iter().map(|&(code, description)| Item {
            code: code.to_owned(),
            description: description.to_owned(),
            price: 0,
            bulk_price: 0,
            dotcom_price: 0,
        }));
        let customers = build_customers(&mut rng, opts.rows);
        let next_bad = rng.random_range(BAD_GAP) / 2;
        let per_day = opts.rows / active_days.max(1) / 14;
        let pool_capacity =
            usize::try_from((per_day * 3).clamp(16, 8192)).expect("at most 8192 invoices");
        Self {
            rng,
            items,
            products,
            customers,
            rows_total: opts.rows,
            quantities: Table::new(&QUANTITIES),
            pricey_quantities: Table::new(&PRICEY_QUANTITIES),
            guest_quantities: Table::new(&GUEST_QUANTITIES),
            adjustment_quantities: Table::new(&ADJUSTMENT_QUANTITIES),
            cancel_sizes: Table::new(&[
                (1, 55),
                (2, 20),
                (3, 10),
                (4, 5),
                (5, 4),
                (6, 2),
                (8, 2),
                (10, 1),
                (15, 1),
            ]),
            postage_quantities: Table::new(&[(1, 45), (2, 30), (3, 25)]),
            postage_prices: Table::new(&[(18_000, 70), (15_000, 12), (40_000, 10), (28_000, 8)]),
            manual_quantities: Table::new(&[(1, 60), (2, 15), (12, 10), (4, 8), (6, 7)]),
            credit_kinds: Table::new(&[
                (SP_DISCOUNT, 30),
                (SP_SAMPLES, 24),
                (SP_MANUAL, 24),
                (SP_AMAZON, 12),
                (SP_BANK, 10),
                (SP_CRUK, 6),
            ]),
            guest_countries: Table::new(&GUEST_COUNTRIES),
            pool: Vec::new(),
            pool_capacity,
            plan: Vec::with_capacity(64),
            extras: Vec::with_capacity(8),
            written: Vec::with_capacity(64),
            next_invoice: FIRST_INVOICE,
            invoice: String::with_capacity(16),
            customer: String::with_capacity(16),
            country: UNITED_KINGDOM,
            date: *b"0000-00-00 00:00:00",
            rows_written: 0,
            invoices: 0,
            bad_rows: 0,
            next_bad,
            burst: false,
        }
    }

    /// Writes the `quota` rows of one day, invoice after invoice.
    fn write_day<W: io::Write>(
        &mut self,
        writer: &mut csv::Writer<W>,
        day: &str,
        quota: u64,
    ) -> io::Result<()> {
        self.date[..10].copy_from_slice(&day.as_bytes()[..10]);
        let mut done = 0;
        while done < quota {
            done += self.write_invoice(writer, done, quota)?;
        }
        Ok(())
    }

    /// Plans and writes one invoice of the day, after `done` of its `quota` rows; returns the
    /// rows written.
    fn write_invoice<W: io::Write>(
        &mut self,
        writer: &mut csv::Writer<W>,
        done: u64,
        quota: u64,
    ) -> io::Result<u64> {
        let x: f64 = self.rng.random();
        let keep = if x < P_CANCELLATION && !self.pool.is_empty() {
            self.plan_cancellation();
            None
        } else if (P_CANCELLATION..P_CANCELLATION + P_ADJUSTMENT).contains(&x) {
            self.plan_adjustment();
            None
        } else if (P_CANCELLATION + P_ADJUSTMENT..P_CANCELLATION + P_ADJUSTMENT + P_SPECIAL_CREDIT)
            .contains(&x)
        {
            self.plan_credit();
            None
        } else {
            self.plan_sale()
        };
        // The time of the invoice is that of its middle row, so that a day's first invoice does
        // not open the shop at dawn.
        let remaining = quota - done;
        let planned = (self.plan.len() as u64).min(remaining);
        let minute = minute_of_day(done + planned / 2, quota);
        write_two_digits(&mut self.date[11..13], minute / 60);
        write_two_digits(&mut self.date[14..16], minute % 60);
        self.emit(writer, remaining, keep)
    }

    /// Starts an invoice: its number (`C` first for a credit), customer and country.
    fn begin_invoice(&mut self, credit: bool, customer: Option<usize>) {
        self.invoice.clear();
        if credit {
            self.invoice.push('C');
        }
        push_number(&mut self.invoice, self.next_invoice);
        self.next_invoice += 1;
        self.customer.clear();
        match customer {
            Some(index) => {
                let customer = self.customers[index];
                push_number(&mut self.customer, u64::from(customer.id));
                self.customer.push_str(".0");
                self.country = if self.rows_written >= customer.move_at {
                    country_name(customer.moved_to)
                } else {
                    country_name(customer.home)
                };
            }
            None => self.country = self.guest_countries.pick(&mut self.rng),
        }
        self.plan.clear();
    }

    /// A customer who has already joined; early joiners buy more often.
    fn pick_customer(&mut self) -> usize {
        let n = self.customers.len() as u128;
        let joined =
            n * (200 + 800 * u128::from(self.rows_written) / u128::from(self.rows_total)) / 1000;
        let joined = usize::try_from(joined.clamp(1, n)).expect("at most the customer count");
        if self.rng.random_bool(0.5) {
            self.rng.random_range(0..joined)
        } else {
            let u: f64 = self.rng.random();
            ((joined as f64 * u * u * u) as usize).min(joined - 1)
        }
    }

    /// A product, popular ones more often.
    fn pick_product(&mut self) -> usize {
        let u: f64 = self.rng.random();
        ((self.products as f64 * u * u.sqrt()) as usize).min(self.products - 1)
    }

    fn special(&self, kind: usize) -> u32 {
        u32::try_from(self.products + kind).expect("a small catalogue")
    }

    /// A sale: product lines and sometimes postage, carriage, manual, voucher or fee lines.
    /// Returns the customer whose invoice may later be cancelled.
    fn plan_sale(&mut self) -> Option<usize> {
        let guest = self.rng.random_bool(P_GUEST);
        let customer = if guest {
            None
        } else {
            Some(self.pick_customer())
        };
        self.begin_invoice(false, customer);
        let size = if self.rng.random_bool(0.15) {
            1
        } else {
            let u: f64 = self.rng.random();
            (2 + (39.0 * u * u.sqrt()) as usize).min(40)
        };
        let foreign = self.country != UNITED_KINGDOM;
        if !guest && foreign {
            if matches!(self.country, "EIRE" | "Channel Islands") && self.rng.random_bool(0.3) {
                let item = self.special(SP_CARRIAGE);
                self.plan.push(Line {
                    item,
                    quantity: 1,
                    price: 50_000,
                    note: 0,
                });
            } else if self.rng.random_bool(0.55) {
                self.push_postage();
            }
        } else if !guest && self.rng.random_bool(0.004) {
            self.push_postage();
        }
        self.extras.clear();
        if guest && self.rng.random_bool(0.12) {
            let u: f64 = self.rng.random();
            let cents = 300 + (29_700.0 * u * u) as u64;
            let item = self.special(SP_DOT);
            self.extras.push(Line {
                item,
                quantity: 1,
                price: cents * 10,
                note: 0,
            });
        }
        if guest && self.rng.random_bool(0.01) {
            let value = self.rng.random_range(1..=5_u64);
            let cents = (value * 10_000 + 6) / 12;
            let item = self.special(SP_GIFT + value as usize - 1);
            self.extras.push(Line {
                item,
                quantity: 1,
                price: cents * 10,
                note: 0,
            });
        }
        if self.rng.random_bool(0.02) {
            let quantity = self.manual_quantities.pick(&mut self.rng);
            let price = draw_price(&mut self.rng);
            let item = self.special(SP_MANUAL);
            self.extras.push(Line {
                item,
                quantity,
                price,
                note: 0,
            });
        }
        if self.rng.random_bool(0.002) {
            let item = self.special(SP_PADS);
            self.extras.push(Line {
                item,
                quantity: 1,
                price: 1,
                note: 0,
            });
        }
        if !guest && foreign && self.rng.random_bool(0.006) {
            let item = self.special(SP_BANK);
            self.extras.push(Line {
                item,
                quantity: 1,
                price: 15_000,
                note: 0,
            });
        }
        if guest && self.rng.random_bool(0.0004) {
            let cents = self.rng.random_range(10_000..1_200_000_u64);
            let item = self.special(SP_BAD_DEBT);
            self.extras.push(Line {
                item,
                quantity: 1,
                price: cents * 10,
                note: 0,
            });
        }
        let products = size
            .saturating_sub(self.plan.len() + self.extras.len())
            .max(1);
        for _ in 0..products {
            // Each product once per invoice, so that only deliberate duplicates repeat a line.
            let mut index = self.pick_product();
            let mut tries = 0;
            while self.plan.iter().any(|line| line.item as usize == index) && tries < 4 {
                index = self.pick_product();
                tries += 1;
            }
            if tries == 4 {
                continue;
            }
            let item = &self.items[index];
            let quantity = if guest {
                self.guest_quantities.pick(&mut self.rng)
            } else if item.price >= 10_000 {
                self.pricey_quantities.pick(&mut self.rng)
            } else {
                self.quantities.pick(&mut self.rng)
            };
            let price = if guest {
                item.dotcom_price
            } else if quantity >= 24 {
                item.bulk_price
            } else if self.rng.random_bool(0.002) {
                0 // a free gift
            } else {
                item.price
            };
            let item = u32::try_from(index).expect("a small catalogue");
            self.plan.push(Line {
                item,
                quantity,
                price,
                note: 0,
            });
        }
        self.plan.extend_from_slice(&self.extras);
        customer
    }

    fn push_postage(&mut self) {
        let quantity = self.postage_quantities.pick(&mut self.rng);
        let price = self.postage_prices.pick(&mut self.rng);
        let item = self.special(SP_POST);
        self.plan.push(Line {
            item,
            quantity,
            price,
            note: 0,
        });
    }

    /// A cancellation: some lines of a recent invoice of the same customer, negated.
    fn plan_cancellation(&mut self) {
        let slot = self.rng.random_range(0..self.pool.len());
        let (customer, mut lines) = self.pool.swap_remove(slot);
        self.begin_invoice(true, Some(customer as usize));
        let count = self.cancel_sizes.pick(&mut self.rng).min(lines.len());
        for i in 0..count {
            let j = self.rng.random_range(i..lines.len());
            lines.swap(i, j);
            let mut line = lines[i];
            line.quantity = if line.quantity > 1 && self.rng.random_bool(0.15) {
                -self.rng.random_range(1..line.quantity)
            } else {
                -line.quantity
            };
            self.plan.push(line);
        }
    }

    /// A stock adjustment: a guest line with a negative quantity, price 0 and a note.
    fn plan_adjustment(&mut self) {
        self.begin_invoice(false, None);
        self.country = UNITED_KINGDOM;
        let item = u32::try_from(self.pick_product()).expect("a small catalogue");
        let quantity = -self.adjustment_quantities.pick(&mut self.rng);
        let note = self.rng.random_range(0..=ADJUSTMENT_NOTES.len() as u8);
        self.plan.push(Line {
            item,
            quantity,
            price: 0,
            note,
        });
    }

    /// A one-line credit: discount, samples, manual, Amazon fee, bank charges or CRUK.
    fn plan_credit(&mut self) {
        let kind = self.credit_kinds.pick(&mut self.rng);
        let identified = matches!(kind, SP_DISCOUNT | SP_MANUAL | SP_CRUK);
        let customer = if identified {
            Some(self.pick_customer())
        } else {
            None
        };
        self.begin_invoice(true, customer);
        if !identified {
            self.country = UNITED_KINGDOM;
        }
        let u: f64 = self.rng.random();
        let skewed = u * u;
        let cents = match kind {
            SP_DISCOUNT => 500 + (29_500.0 * skewed) as u64,
            SP_SAMPLES => 100 + (5_900.0 * skewed) as u64,
            SP_AMAZON => 20_000 + (1_380_000.0 * skewed) as u64,
            SP_BANK => 1_500 + (98_500.0 * skewed) as u64,
            SP_CRUK => 160 + (59_840.0 * skewed) as u64,
            _ => draw_price(&mut self.rng) / 10,
        };
        let item = self.special(kind);
        self.plan.push(Line {
            item,
            quantity: -1,
            price: cents * 10,
            note: 0,
        });
    }

    /// Writes the planned lines (at most `remaining`), now and then repeating an earlier line
    /// or breaking one; keeps a sale of `keep` for later cancellations. Returns the rows written.
    fn emit<W: io::Write>(
        &mut self,
        writer: &mut csv::Writer<W>,
        remaining: u64,
        keep: Option<usize>,
    ) -> io::Result<u64> {
        self.written.clear();
        let mut count = 0;
        for index in 0..self.plan.len() {
            if count == remaining {
                break;
            }
            if !self.written.is_empty() && self.rng.random_bool(P_DUPLICATE) {
                let again = self.written[self.rng.random_range(0..self.written.len())];
                self.write_line(writer, again, None)?;
                count += 1;
                if count == remaining {
                    break;
                }
            }
            let line = self.plan[index];
            let scheduled = self.rows_written + count >= self.next_bad;
            if scheduled || (self.burst && self.rng.random_bool(0.2)) {
                let defect = DEFECTS[(self.bad_rows % 6) as usize];
                self.write_line(writer, line, Some(defect))?;
                self.bad_rows += 1;
                // A planted burst's rows do not move the usual schedule of broken rows.
                if scheduled {
                    self.next_bad += self.rng.random_range(BAD_GAP);
                }
            } else {
                self.write_line(writer, line, None)?;
                self.written.push(line);
            }
            count += 1;
        }
        self.rows_written += count;
        self.invoices += u64::from(count > 0);
        if let Some(customer) = keep
            && !self.written.is_empty()
        {
            let customer = u32::try_from(customer).expect("at most 500,000 customers");
            if self.pool.len() < self.pool_capacity {
                self.pool.push((customer, self.written.clone()));
            } else {
                let slot = self.rng.random_range(0..self.pool.len());
                let entry = &mut self.pool[slot];
                entry.0 = customer;
                entry.1.clear();
                entry.1.extend_from_slice(&self.written);
            }
        }
        Ok(count)
    }

    /// Writes one row of the current invoice, broken as `defect` says.
    fn write_line<W: io::Write>(
        &self,
        writer: &mut csv::Writer<W>,
        line: Line,
        defect: Option<Defect>,
    ) -> io::Result<()> {
        let item = &self.items[line.item as usize];
        let description = match line.note {
            0 => item.description.as_str(),
            n => ADJUSTMENT_NOTES[usize::from(n) - 1],
        };
        let mut quantity_buf = [0_u8; 24];
        let mut price_buf = [0_u8; 24];
        let mut date = self.date;
        let mut quantity = format_int(i64::from(line.quantity), &mut quantity_buf);
        let price_milli = i64::try_from(line.price).expect("prices are small");
        let mut price = format_price(price_milli, &mut price_buf);
        let mut code = item.code.as_bytes();
        let mut country = self.country.as_bytes();
        match defect {
            None => {}
            Some(Defect::NegativePrice) => {
                let price_milli = if price_milli == 0 {
                    -1_250
                } else {
                    -price_milli
                };
                price = format_price(price_milli, &mut price_buf);
            }
            Some(Defect::ZeroQuantity) => quantity = b"0",
            Some(Defect::MissingStockCode) => code = b"",
            Some(Defect::UnparseableDate) => {
                if self.bad_rows % 12 < 6 {
                    date[8..10].copy_from_slice(b"32");
                } else {
                    date[11..13].copy_from_slice(b"25");
                }
            }
            Some(Defect::TextQuantity) => quantity = b"abc",
            Some(Defect::MissingCountry) => country = b"",
        }
        writer.write_record([
            self.invoice.as_bytes(),
            code,
            description.as_bytes(),
            quantity,
            &date,
            price,
            self.customer.as_bytes(),
            country,
        ])?;
        Ok(())
    }
}

/// The product catalogue: `n` stock codes in increasing order of their five digits, some of
/// them variants (`84029E`, `84029G`, ...) of one design in several colours, then shuffled so that
/// popularity does not follow the codes.
fn build_catalogue(rng: &mut StdRng, n: usize) -> Vec<Item> {
    let n = n.max(1);
    let spacing = (89_000 / n).max(1);
    let mut items: Vec<Item> = Vec::with_capacity(n + 4);
    let mut seen: HashSet<String> = HashSet::with_capacity(n);
    let mut base_index = 0;
    while items.len() < n {
        let base = 10_002 + base_index * 89_000 / n + rng.random_range(0..spacing);
        base_index += 1;
        if rng.random_bool(0.22) {
            let stem = unique_description(rng, &mut seen, true);
            let variants = rng.random_range(2..=4_usize);
            let first_colour = rng.random_range(0..COLOURS.len());
            let colour_first = rng.random_bool(0.5);
            let price = draw_price(rng);
            let first_letter = b'A' + rng.random_range(0..3_u8);
            for variant in 0..variants {
                let colour = COLOURS[(first_colour + variant * 3) % COLOURS.len()];
                let mut suffix = char::from(first_letter + variant as u8);
                if rng.random_bool(0.03) {
                    suffix = suffix.to_ascii_lowercase();
                }
                let description = if colour_first {
                    format!("{colour} {stem}")
                } else {
                    format!("{stem} {colour}")
                };
                let code = format!("{base}{suffix}");
                items.push(new_item(code, add_quirks(rng, description), price));
            }
        } else {
            let description = unique_description(rng, &mut seen, false);
            let price = draw_price(rng);
            items.push(new_item(
                base.to_string(),
                add_quirks(rng, description),
                price,
            ));
        }
    }
    items.truncate(n);
    shuffle(rng, &mut items);
    items
}

fn new_item(code: String, description: String, price: u64) -> Item {
    let cents = price / 10;
    Item {
        code,
        description,
        price,
        bulk_price: ((cents * 85 + 50) / 100).max(1) * 10,
        dotcom_price: ((cents * 117 + 50) / 100).max(1) * 10,
    }
}

/// A description not used yet (tries a few times, then accepts a repeat).
fn unique_description(rng: &mut StdRng, seen: &mut HashSet<String>, stem: bool) -> String {
    let mut description = describe(rng, stem);
    for _ in 0..8 {
        if !seen.contains(&description) {
            break;
        }
        description = describe(rng, stem);
    }
    seen.insert(description.clone());
    description
}

/// A description from the word lists; a stem leaves the colour to the variants.
fn describe(rng: &mut StdRng, stem: bool) -> String {
    let colour = COLOURS[rng.random_range(0..COLOURS.len())];
    let theme = THEMES[rng.random_range(0..THEMES.len())];
    let material = MATERIALS[rng.random_range(0..MATERIALS.len())];
    let noun = NOUNS[rng.random_range(0..NOUNS.len())];
    if stem {
        return match rng.random_range(0..3) {
            0 => format!("{material} {theme} {noun}"),
            1 => format!("{theme} {noun}"),
            _ => format!("{material} {noun}"),
        };
    }
    match rng.random_range(0..100) {
        0..=24 => format!("{colour} {theme} {noun}"),
        25..=44 => format!("{material} {theme} {noun}"),
        45..=59 => format!("{noun} {colour} {theme}"),
        60..=71 => {
            let count = [2, 3, 4, 6, 12][rng.random_range(0..5)];
            format!("SET OF {count} {theme} {noun}")
        }
        72..=79 => {
            let count = [12, 20, 60, 72][rng.random_range(0..4)];
            format!("PACK OF {count} {theme} {noun}")
        }
        80..=95 => format!("{material} {colour} {noun}"),
        96..=97 => format!("{noun}, {theme}"),
        _ => format!("{noun} , {colour} {theme}"),
    }
}

/// Typing quirks of the real catalogue: a trailing space, a doubled space.
fn add_quirks(rng: &mut StdRng, mut description: String) -> String {
    if rng.random_bool(0.02)
        && let Some(at) = description.find(' ')
    {
        description.insert(at, ' ');
    }
    if rng.random_bool(0.08) {
        description.push(' ');
    }
    description
}

/// A product price in thousandths from the real per-product distribution, rounded the way shops
/// price: mostly to a popular shelf price (0.42, 1.25, 2.95, 9.95), else to 5 or 25 pence.
fn draw_price(rng: &mut StdRng) -> u64 {
    let u: f64 = rng.random();
    let mut milli = PRICE_QUANTILES[PRICE_QUANTILES.len() - 1].1;
    for pair in PRICE_QUANTILES.windows(2) {
        let ((p0, v0), (p1, v1)) = (pair[0], pair[1]);
        if u < p1 {
            milli = v0 + (v1 - v0) * (u - p0) / (p1 - p0);
            break;
        }
    }
    let mut cents = ((milli / 10.0 + 0.5) as u64).max(1);
    if rng.random_bool(0.6) {
        let at = PRICE_POINTS
            .partition_point(|&point| point < cents)
            .min(PRICE_POINTS.len() - 1);
        let below = PRICE_POINTS[at.saturating_sub(1)];
        let above = PRICE_POINTS[at];
        let nearest = if cents.abs_diff(below) <= cents.abs_diff(above) {
            below
        } else {
            above
        };
        return nearest * 10;
    }
    if cents >= 1_000 {
        cents = (cents + 12) / 25 * 25;
        if cents.is_multiple_of(100) {
            cents -= 5;
        }
    } else if cents >= 100 {
        cents = (cents + 2) / 5 * 5;
    }
    cents * 10
}

/// Customers: ids spread over 12346..18287 (further when there are more), about 90% at home in
/// the United Kingdom, the others mostly by weight but every fourth one taking the next country
/// of the list (so that every country shows up), a few moving once; shuffled into the order in
/// which they join.
fn build_customers(rng: &mut StdRng, rows: u64) -> Vec<Customer> {
    let n = (rows / 120).clamp(20, MAX_CUSTOMERS);
    let span = n.max(CUSTOMER_ID_SPAN);
    let spacing = span / n;
    let entries: Vec<(u8, u32)> = FOREIGN_COUNTRIES
        .iter()
        .enumerate()
        .map(|(index, &(_, weight))| (u8::try_from(index + 1).expect("a few countries"), weight))
        .collect();
    let foreign = Table::new(&entries);
    let mut foreign_seen = 0;
    let mut customers = Vec::with_capacity(usize::try_from(n).expect("at most 500,000"));
    for i in 0..n {
        let id = FIRST_CUSTOMER_ID + i * span / n + rng.random_range(0..spacing);
        let home = if rng.random_bool(0.9) {
            0
        } else {
            foreign_seen += 1;
            let covering = foreign_seen / 4;
            if foreign_seen % 4 == 0 && covering <= FOREIGN_COUNTRIES.len() {
                u8::try_from(covering).expect("a few countries")
            } else {
                foreign.pick(rng)
            }
        };
        let (moved_to, move_at) = if rng.random_bool(P_MOVER) {
            let moved_to = if home != 0 && rng.random_bool(0.5) {
                0
            } else {
                foreign.pick(rng)
            };
            let at = u128::from(rows) * u128::from(rng.random_range(200..800_u64)) / 1000;
            (moved_to, u64::try_from(at).expect("below the row count"))
        } else {
            (home, u64::MAX)
        };
        let move_at = if moved_to == home { u64::MAX } else { move_at };
        let id = u32::try_from(id).expect("ids stay below 600,000");
        customers.push(Customer {
            id,
            home,
            moved_to,
            move_at,
        });
    }
    shuffle(rng, &mut customers);
    customers
}

/// Fisher-Yates, written out so that the order only depends on the generator's numbers.
fn shuffle<T>(rng: &mut StdRng, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = rng.random_range(0..=i);
        items.swap(i, j);
    }
}

fn write_two_digits(target: &mut [u8], value: u32) {
    target[0] = b'0' + (value / 10 % 10) as u8;
    target[1] = b'0' + (value % 10) as u8;
}

fn push_number(target: &mut String, value: u64) {
    let mut buf = [0_u8; 24];
    let digits = format_int(i64::try_from(value).unwrap_or(i64::MAX), &mut buf);
    target.push_str(std::str::from_utf8(digits).expect("digits are ascii"));
}

/// Formats an integer into `buf`, returning the digits.
fn format_int(value: i64, buf: &mut [u8; 24]) -> &[u8] {
    let mut at = buf.len();
    let mut rest = value.unsigned_abs();
    loop {
        at -= 1;
        buf[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if value < 0 {
        at -= 1;
        buf[at] = b'-';
    }
    &buf[at..]
}

/// Formats a price in thousandths like the real exports: `2.55`, `2.1`, `18.0`, `0.001`.
fn format_price(milli: i64, buf: &mut [u8; 24]) -> &[u8] {
    let abs = milli.unsigned_abs();
    let (whole, fraction) = (abs / 1000, abs % 1000);
    let (fraction, digits) = if fraction % 10 != 0 {
        (fraction, 3)
    } else if fraction % 100 != 0 {
        (fraction / 10, 2)
    } else {
        (fraction / 100, 1)
    };
    let mut at = buf.len();
    let mut rest = fraction;
    for _ in 0..digits {
        at -= 1;
        buf[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    at -= 1;
    buf[at] = b'.';
    let mut rest = whole;
    loop {
        at -= 1;
        buf[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if milli < 0 {
        at -= 1;
        buf[at] = b'-';
    }
    &buf[at..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};
    use std::sync::OnceLock;

    /// One data row and the day of the file it came from.
    struct Row {
        day: String,
        fields: Vec<String>,
    }

    /// Planted days are open days after the first eight weeks; surges have about four times
    /// the rows of their weekday neighbours, drops about a quarter, bad-data days many broken
    /// rows; without planting, the files are the same as before.
    #[test]
    fn planted_days_are_unusual_in_the_way_they_say() {
        let plain = opts(60_000, 5);
        let planting = GenerateOptions {
            anomaly_days: 6,
            ..plain
        };
        let planted = planted_anomalies(&planting);
        assert_eq!(planted.len(), 6);
        assert!(planted_anomalies(&plain).is_empty());
        let (dir, summary) = generate(&planting);
        let (plain_dir, plain_summary) = generate(&plain);
        let rows_of = |dir: &Path, date: NaiveDate| -> usize {
            let text =
                fs::read_to_string(dir.join(format!("{date}.csv"))).expect("a file per open day");
            text.lines().count() - 1
        };
        for p in &planted {
            assert_ne!(p.date.weekday(), Weekday::Sat);
            assert!(p.date >= plain.start + Days::new(56));
            let ratio =
                rows_of(dir.path(), p.date) as f64 / rows_of(plain_dir.path(), p.date) as f64;
            match p.kind {
                PlantedKind::Surge => assert!(ratio > 3.0, "{p:?}: {ratio}"),
                PlantedKind::Drop => assert!(ratio < 0.35, "{p:?}: {ratio}"),
                PlantedKind::BadData => assert!((0.8..1.25).contains(&ratio), "{p:?}: {ratio}"),
            }
        }
        let bad_days_rows: usize = planted
            .iter()
            .filter(|p| p.kind == PlantedKind::BadData)
            .map(|p| rows_of(dir.path(), p.date))
            .sum();
        let extra = (summary.bad_rows - plain_summary.bad_rows) as f64;
        assert!(
            extra > 0.15 * bad_days_rows as f64,
            "{extra} more bad rows over {bad_days_rows}"
        );
    }

    fn opts(rows: u64, seed: u64) -> GenerateOptions {
        GenerateOptions {
            rows,
            seed,
            ..GenerateOptions::default()
        }
    }

    /// File name -> bytes, in name order.
    fn read_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        fs::read_dir(dir)
            .unwrap()
            .map(|entry| {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_str().unwrap().to_owned();
                (name, fs::read(&path).unwrap())
            })
            .collect()
    }

    /// Parses every file strictly (8 fields a record, header checked).
    fn parse(dir: &Path) -> Vec<Row> {
        let mut rows = Vec::new();
        for (name, bytes) in read_files(dir) {
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(true)
                .from_reader(&bytes[..]);
            assert_eq!(
                reader.headers().unwrap(),
                HEADER.as_slice(),
                "header of {name}"
            );
            for record in reader.records() {
                let record = record.unwrap();
                assert_eq!(record.len(), 8, "{name}: {record:?}");
                let fields = record.iter().map(str::to_owned).collect();
                rows.push(Row {
                    day: name.trim_end_matches(".csv").to_owned(),
                    fields,
                });
            }
        }
        rows
    }

    fn generate(options: &GenerateOptions) -> (tempfile::TempDir, GenerateSummary) {
        let dir = tempfile::tempdir().unwrap();
        let summary = write_daily_csv_files(dir.path(), options).unwrap();
        (dir, summary)
    }

    /// The default run of 100,000 rows, parsed once for all tests.
    fn sample() -> &'static (Vec<Row>, GenerateSummary) {
        static SAMPLE: OnceLock<(Vec<Row>, GenerateSummary)> = OnceLock::new();
        SAMPLE.get_or_init(|| {
            let (dir, summary) = generate(&GenerateOptions::default());
            (parse(dir.path()), summary)
        })
    }

    fn is_non_product(code: &str) -> bool {
        matches!(
            code,
            "POST" | "DOT" | "C2" | "M" | "D" | "S" | "BANK CHARGES" | "AMAZONFEE" | "CRUK" | "B"
        ) || code.starts_with("gift_")
    }

    fn parse_time(text: &str) -> Option<chrono::NaiveDateTime> {
        chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").ok()
    }

    fn share(count: usize, total: usize) -> f64 {
        100.0 * count as f64 / total as f64
    }

    #[test]
    fn default_options_are_as_documented() {
        let options = GenerateOptions::default();
        assert_eq!(options.rows, 100_000);
        assert_eq!(options.seed, 42);
        assert_eq!(options.start, NaiveDate::from_ymd_opt(2010, 12, 1).unwrap());
        assert_eq!(options.days, 365);
    }

    #[test]
    fn same_seed_gives_identical_bytes_and_another_seed_differs() {
        let (a, summary_a) = generate(&opts(20_000, 7));
        let (b, summary_b) = generate(&opts(20_000, 7));
        let (c, _) = generate(&opts(20_000, 8));
        assert_eq!(summary_a, summary_b);
        let files_a = read_files(a.path());
        assert_eq!(files_a, read_files(b.path()));
        assert_ne!(files_a, read_files(c.path()));
    }

    #[test]
    fn writes_exactly_the_rows_asked_for() {
        let start = NaiveDate::from_ymd_opt(2011, 3, 5).unwrap(); // a Saturday
        let cases = [
            (1, 1),
            (1, 365),
            (7, 3),
            (999, 30),
            (12_345, 365),
            (5_000, 1),
            (3, 1_000),
        ];
        for (rows, days) in cases {
            let options = GenerateOptions {
                rows,
                seed: 3,
                start,
                days,
                anomaly_days: 0,
            };
            let (dir, summary) = generate(&options);
            let parsed = parse(dir.path());
            assert_eq!(parsed.len() as u64, rows, "{options:?}");
            assert_eq!(summary.rows, rows);
            let files = read_files(dir.path());
            assert_eq!(summary.files, files.len() as u64);
            let invoices: HashSet<&str> = parsed.iter().map(|row| row.fields[0].as_str()).collect();
            assert_eq!(summary.invoices, invoices.len() as u64, "{options:?}");
            for name in files.keys() {
                let day = NaiveDate::parse_from_str(name, "%Y-%m-%d.csv").unwrap();
                assert!(
                    day >= start && day < start + Days::new(u64::from(days)),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn zero_rows_write_nothing_and_zero_days_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("nested/out");
        let summary = write_daily_csv_files(&target, &opts(0, 1)).unwrap();
        assert_eq!(
            summary,
            GenerateSummary {
                rows: 0,
                files: 0,
                invoices: 0,
                bad_rows: 0
            }
        );
        assert!(target.is_dir());
        assert_eq!(fs::read_dir(&target).unwrap().count(), 0);
        let error = write_daily_csv_files(
            &target,
            &GenerateOptions {
                days: 0,
                ..opts(10, 1)
            },
        )
        .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        let late = GenerateOptions {
            start: NaiveDate::MAX,
            days: 2,
            ..opts(10, 1)
        };
        let error = write_daily_csv_files(&target, &late).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn files_have_the_header_and_lines_parse_as_eight_fields() {
        let (dir, _) = generate(&opts(3_000, 11));
        for (name, bytes) in read_files(dir.path()) {
            let text = String::from_utf8(bytes).unwrap();
            assert!(
                text.starts_with(&format!("{}\n", HEADER.join(","))),
                "{name}"
            );
            assert!(!text.contains('\r'));
        }
        // `parse` checks headers and field counts of every record.
        assert_eq!(parse(dir.path()).len(), 3_000);
        let (rows, _) = sample();
        let quoted = rows
            .iter()
            .filter(|row| row.fields[2].contains(','))
            .count();
        assert!(
            quoted > 0,
            "descriptions with commas round-trip through quoting"
        );
    }

    #[test]
    fn dates_stay_within_the_range_and_shop_hours() {
        let (rows, _) = sample();
        let start = GenerateOptions::default().start;
        let end = start + Days::new(365);
        let mut unparseable = 0;
        for row in rows {
            let day = NaiveDate::parse_from_str(&row.day, "%Y-%m-%d").unwrap();
            assert!(day >= start && day < end, "{}", row.day);
            assert_ne!(day.weekday(), Weekday::Sat);
            let Some(time) = parse_time(&row.fields[4]) else {
                unparseable += 1;
                continue;
            };
            assert_eq!(time.date(), day, "{:?}", row.fields);
            let hour = chrono::Timelike::hour(&time);
            assert!((7..=20).contains(&hour), "{:?}", row.fields);
        }
        assert!(unparseable > 0);
    }

    #[test]
    fn invoices_keep_one_customer_country_and_time() {
        let (rows, _) = sample();
        let mut seen: HashMap<&str, (&str, &str, &str)> = HashMap::new();
        let mut last_number = 0;
        let mut last_time = None;
        for row in rows {
            let f = &row.fields;
            let number: u64 = f[0].trim_start_matches('C').parse().unwrap();
            assert!(number >= FIRST_INVOICE);
            if number != last_number {
                assert!(number > last_number, "invoice numbers only grow");
                last_number = number;
            }
            if f[7].is_empty() || parse_time(&f[4]).is_none() {
                continue; // broken on purpose
            }
            let time = parse_time(&f[4]);
            assert!(time >= last_time, "time goes forward: {f:?}");
            last_time = time;
            let header = (f[4].as_str(), f[6].as_str(), f[7].as_str());
            assert_eq!(
                *seen.entry(f[0].as_str()).or_insert(header),
                header,
                "{f:?}"
            );
            if !f[6].is_empty() {
                assert!(f[6].ends_with(".0") && f[6].len() >= 7, "{f:?}");
                let id: u32 = f[6].trim_end_matches(".0").parse().unwrap();
                assert!(id >= 12_346);
            }
        }
    }

    #[test]
    fn cancellations_copy_lines_of_an_earlier_invoice_of_the_customer() {
        let (rows, _) = sample();
        // (customer, stock code, price) -> largest quantity sold so far.
        let mut sold: HashMap<(&str, &str, &str), i64> = HashMap::new();
        let mut cancellations = 0;
        for row in rows {
            let f = &row.fields;
            let Ok(quantity) = f[3].parse::<i64>() else {
                continue;
            };
            if f[0].starts_with('C') {
                assert!(quantity < 0 || f[3] == "0", "{f:?}");
                if matches!(
                    f[1].as_str(),
                    "D" | "S" | "CRUK" | "AMAZONFEE" | "BANK CHARGES" | "M"
                ) || f[1].is_empty()
                    || f[5].starts_with('-')
                {
                    continue;
                }
                cancellations += 1;
                assert!(
                    !f[6].is_empty(),
                    "cancellations are by known customers: {f:?}"
                );
                let before = sold.get(&(f[6].as_str(), f[1].as_str(), f[5].as_str()));
                assert!(
                    before.is_some_and(|&q| q >= -quantity),
                    "nothing to cancel: {f:?}"
                );
            } else if quantity > 0 {
                let entry = sold
                    .entry((f[6].as_str(), f[1].as_str(), f[5].as_str()))
                    .or_default();
                *entry = (*entry).max(quantity);
            }
        }
        assert!(cancellations > 0);
    }

    #[test]
    fn every_kind_of_row_occurs_at_100k() {
        let (rows, summary) = sample();
        let n = rows.len();
        assert_eq!(n, 100_000);
        let count =
            |test: &dyn Fn(&[String]) -> bool| rows.iter().filter(|row| test(&row.fields)).count();
        let quantity = |f: &[String]| f[3].parse::<i64>().ok();
        let cancellation_lines = count(&|f| f[0].starts_with('C'));
        let returns = count(&|f| quantity(f).is_some_and(|q| q < 0));
        let adjustments = count(&|f| !f[0].starts_with('C') && quantity(f).is_some_and(|q| q < 0));
        let guests = count(&|f| f[6].is_empty());
        let non_product = count(&|f| is_non_product(&f[1]));
        let free = count(&|f| f[5] == "0.0");
        let tenth_of_a_penny = count(&|f| f[5] == "0.001");
        let united_kingdom = count(&|f| f[7] == UNITED_KINGDOM);
        let mut distinct = HashSet::new();
        let duplicates = rows
            .iter()
            .filter(|row| !distinct.insert(&row.fields))
            .count();
        let negative_price = count(&|f| f[5].starts_with('-'));
        let zero_quantity = count(&|f| f[3] == "0");
        let missing_code = count(&|f| f[1].is_empty());
        let bad_date = count(&|f| parse_time(&f[4]).is_none());
        let text_quantity = count(&|f| f[3] == "abc");
        let missing_country = count(&|f| f[7].is_empty());
        let bad = negative_price
            + zero_quantity
            + missing_code
            + bad_date
            + text_quantity
            + missing_country;
        let invoices: HashSet<&str> = rows.iter().map(|row| row.fields[0].as_str()).collect();
        let cancellation_invoices = invoices.iter().filter(|i| i.starts_with('C')).count();
        let customers: HashSet<&str> = rows
            .iter()
            .map(|row| row.fields[6].as_str())
            .filter(|c| !c.is_empty())
            .collect();
        let countries: HashSet<&str> = rows.iter().map(|row| row.fields[7].as_str()).collect();
        let codes: HashSet<&str> = rows.iter().map(|row| row.fields[1].as_str()).collect();
        let mut movers: HashMap<&str, HashSet<&str>> = HashMap::new();
        for row in rows
            .iter()
            .filter(|row| !row.fields[6].is_empty() && !row.fields[7].is_empty())
        {
            movers
                .entry(&row.fields[6])
                .or_default()
                .insert(&row.fields[7]);
        }
        let movers = movers
            .values()
            .filter(|countries| countries.len() > 1)
            .count();
        println!(
            "rows {n}, files {}, invoices {} ({cancellation_invoices} cancellations, {:.2}%), \
             customers {}, countries {}, stock codes {}, movers {movers}",
            summary.files,
            invoices.len(),
            share(cancellation_invoices, invoices.len()),
            customers.len(),
            countries.len(),
            codes.len(),
        );
        for (name, value) in [
            ("cancellation lines", cancellation_lines),
            ("returns (quantity < 0)", returns),
            ("stock adjustments", adjustments),
            ("guest lines", guests),
            ("non-product lines", non_product),
            ("price 0", free),
            ("price 0.001", tenth_of_a_penny),
            ("united kingdom", united_kingdom),
            ("exact duplicates", duplicates),
            ("bad rows", bad),
            ("  negative price", negative_price),
            ("  quantity 0", zero_quantity),
            ("  missing stock code", missing_code),
            ("  unparseable date", bad_date),
            ("  quantity abc", text_quantity),
            ("  missing country", missing_country),
        ] {
            println!("{name:>24}: {value:>6} ({:.3}%)", share(value, n));
        }
        assert_eq!(bad as u64, summary.bad_rows);
        for kind in [
            negative_price,
            zero_quantity,
            missing_code,
            bad_date,
            text_quantity,
        ] {
            assert!(kind > 0);
        }
        assert!(missing_country > 0 && tenth_of_a_penny > 0 && free > 0 && adjustments > 0);
        assert!(movers > 0);
        assert!((1.0..3.0).contains(&share(cancellation_lines, n)));
        assert!(returns > cancellation_lines);
        assert!((20.0..30.0).contains(&share(guests, n)));
        assert!((0.2..2.0).contains(&share(non_product, n)));
        assert!((0.7..1.3).contains(&share(duplicates, n)));
        assert!((0.03..0.08).contains(&share(bad, n)));
        assert!((85.0..95.0).contains(&share(united_kingdom, n)));
    }
}

//! Documents as JSON: what the index stores beside each document (and what Typesense holds),
//! and the content hash that tells whether a document changed since it was indexed.

use chrono::{NaiveDate, NaiveDateTime};
use retail_domain::search::{CustomerDoc, DocKind, Document, InvoiceDoc, ProductDoc};
use serde_json::{Value, json};

/// The document as a JSON object, with `kind` and `id`.
pub fn to_json(document: &Document) -> Value {
    let date = |day: Option<NaiveDate>| day.map(|day| day.to_string());
    let mut value = match document {
        Document::Product(p) => json!({
            "stock_code": p.stock_code,
            "description": p.description,
            "line_type": p.line_type,
            "price": p.price,
            "price_band": p.price_band,
            "countries": p.countries,
            "units": p.units,
            "revenue": p.revenue,
            "orders": p.orders,
            "first_sale": date(p.first_sale),
            "last_sale": date(p.last_sale),
        }),
        Document::Customer(c) => json!({
            "customer_id": c.customer_id,
            "country": c.country,
            "segment": c.segment,
            "first_purchase": date(c.first_purchase),
            "last_purchase": date(c.last_purchase),
            "orders": c.orders,
            "revenue": c.revenue,
        }),
        Document::Invoice(i) => json!({
            "invoice": i.invoice,
            "customer_id": i.customer_id,
            "country": i.country,
            "date": i.date.format("%Y-%m-%dT%H:%M:%S").to_string(),
            "total": i.total,
            "lines": i.lines,
            "cancellation": i.cancellation,
        }),
    };
    value["kind"] = json!(document.kind().as_str());
    value
}

fn text(value: &Value, key: &str) -> Option<String> {
    value.get(key)?.as_str().map(str::to_owned)
}

fn day(value: &Value, key: &str) -> Option<Option<NaiveDate>> {
    match value.get(key)? {
        Value::Null => Some(None),
        Value::String(text) => text.parse().ok().map(Some),
        _ => None,
    }
}

/// Reads what [`to_json`] wrote; `None` when it is not that.
pub fn from_json(value: &Value) -> Option<Document> {
    let int = |key: &str| value.get(key)?.as_i64();
    let float = |key: &str| value.get(key)?.as_f64();
    Some(match value.get("kind")?.as_str()? {
        "product" => Document::Product(ProductDoc {
            stock_code: text(value, "stock_code")?,
            description: text(value, "description")?,
            line_type: text(value, "line_type")?,
            price: float("price")?,
            price_band: text(value, "price_band")?,
            countries: value
                .get("countries")?
                .as_array()?
                .iter()
                .map(|c| c.as_str().map(str::to_owned))
                .collect::<Option<_>>()?,
            units: int("units")?,
            revenue: float("revenue")?,
            orders: int("orders")?,
            first_sale: day(value, "first_sale")?,
            last_sale: day(value, "last_sale")?,
        }),
        "customer" => Document::Customer(CustomerDoc {
            customer_id: text(value, "customer_id")?,
            country: text(value, "country")?,
            segment: text(value, "segment"),
            first_purchase: day(value, "first_purchase")?,
            last_purchase: day(value, "last_purchase")?,
            orders: int("orders")?,
            revenue: float("revenue")?,
        }),
        "invoice" => Document::Invoice(InvoiceDoc {
            invoice: text(value, "invoice")?,
            customer_id: text(value, "customer_id"),
            country: text(value, "country")?,
            date: NaiveDateTime::parse_from_str(&text(value, "date")?, "%Y-%m-%dT%H:%M:%S").ok()?,
            total: float("total")?,
            lines: int("lines")?,
            cancellation: value.get("cancellation")?.as_bool()?,
        }),
        _ => return None,
    })
}

/// The FNV-1a hash of a document's JSON: equal content, equal hash.
pub fn content_hash(json: &str) -> u64 {
    fnv(json.as_bytes())
}

/// The 64-bit FNV-1a hash of `bytes`.
pub fn fnv(bytes: &[u8]) -> u64 {
    retail_domain::hash::fnv1a(retail_domain::hash::FNV_OFFSET, bytes.iter().copied())
}

/// The key of a document in every index: `kind:id`.
pub fn key(document: &Document) -> String {
    key_of(document.kind(), document.id())
}

/// The key of the document of `kind` with `id`.
pub fn key_of(kind: DocKind, id: &str) -> String {
    format!("{}:{id}", kind.as_str())
}

/// The id in a key of `kind`; `None` when the key is of another kind.
pub fn id_in(kind: DocKind, key: &str) -> Option<&str> {
    key.strip_prefix(kind.as_str())?.strip_prefix(':')
}

/// What every index stores of a document to tell later whether it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// [`key`].
    pub key: String,
    /// [`to_json`], as text.
    pub json: String,
    /// [`content_hash`] of the JSON.
    pub hash: u64,
}

impl Fingerprint {
    /// The fingerprint of `document`.
    pub fn of(document: &Document) -> Self {
        let json = to_json(document).to_string();
        Self {
            key: key(document),
            hash: content_hash(&json),
            json,
        }
    }
}

/// The title with every word in `matched` (lowercased) wrapped in `<em>`; `None` when no word
/// matched.
pub fn highlight(title: &str, matched: &std::collections::HashSet<String>) -> Option<String> {
    let mut out = String::with_capacity(title.len() + 16);
    let mut word = String::new();
    let mut any = false;
    let mut flush = |word: &mut String, out: &mut String| {
        if word.is_empty() {
            return;
        }
        if matched.contains(&word.to_lowercase()) {
            out.push_str("<em>");
            out.push_str(word);
            out.push_str("</em>");
            any = true;
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in title.chars() {
        if c.is_alphanumeric() {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    any.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_survive_their_json_and_equal_content_hashes_equal() {
        let invoice = Document::Invoice(InvoiceDoc {
            invoice: "C536379".to_owned(),
            customer_id: None,
            country: "United Kingdom".to_owned(),
            date: NaiveDate::from_ymd_opt(2010, 12, 1)
                .unwrap()
                .and_hms_opt(9, 41, 0)
                .unwrap(),
            total: -27.5,
            lines: 1,
            cancellation: true,
        });
        let json = to_json(&invoice);
        assert_eq!(json["kind"], "invoice");
        assert_eq!(from_json(&json), Some(invoice.clone()));
        assert_eq!(key(&invoice), "invoice:C536379");
        assert_eq!(id_in(DocKind::Invoice, "invoice:C536379"), Some("C536379"));
        assert_eq!(id_in(DocKind::Product, "invoice:C536379"), None);
        assert_eq!(
            Fingerprint::of(&invoice).hash,
            content_hash(&json.to_string())
        );
        let text = json.to_string();
        assert_eq!(
            content_hash(&text),
            content_hash(&to_json(&invoice).to_string())
        );
        assert_ne!(
            content_hash(&text),
            content_hash(&text.replace("27.5", "27.6"))
        );
        assert_eq!(from_json(&json!({"kind": "shop"})), None);
    }

    #[test]
    fn highlight_wraps_matched_words_and_keeps_the_rest() {
        let matched = ["red".to_owned(), "retrospot".to_owned()]
            .into_iter()
            .collect();
        assert_eq!(
            highlight("RED RETROSPOT CAKE-STAND", &matched).as_deref(),
            Some("<em>RED</em> <em>RETROSPOT</em> CAKE-STAND")
        );
        assert_eq!(highlight("BLUE SPOT", &matched), None);
    }
}

//! Pseudonyms for callers whose role masks identifying columns (ADR 0015), applied by the
//! guard to every protected route: a request that names a masked value is refused, and every
//! JSON answer has the masked columns' values replaced by their pseudonyms. Exports that are
//! not JSON mask in the service that writes them (`CustomerDetail`).

use axum::body::{Body, to_bytes};
use axum::http::Uri;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::response::Response;
use retail_domain::privacy::Masker;
use serde_json::Value;

/// The largest JSON answer masked in memory (every JSON answer of the API is far smaller).
const MAX_MASKED_BYTES: usize = 64 * 1024 * 1024;

/// Why a request of a masking caller is refused, if it is: it names a masked value in its
/// path (`/api/v1/customers/{customer_id}`) or query (`customer_id=`), or searches more than
/// products (`type=product`) (a search by a customer's id would tie the id to its pseudonym).
pub(crate) fn refusal(masker: &Masker, role: &str, route: &str, uri: &Uri) -> Option<String> {
    let query: Vec<(String, String)> =
        axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map(|axum::extract::Query(pairs)| pairs)
            .unwrap_or_default();
    for column in masker.columns() {
        if route.contains(&format!("{{{column}}}")) || query.iter().any(|(name, _)| name == column)
        {
            return Some(format!(
                "role {role} sees {column} as pseudonyms and may not name one in a request"
            ));
        }
    }
    if masker.masks("customer_id")
        && route.starts_with("/api/v1/search")
        && !query
            .iter()
            .any(|(name, value)| name == "type" && value == "product")
    {
        return Some(format!(
            "role {role} sees customer ids as pseudonyms: it may search products only (type=product)"
        ));
    }
    None
}

/// `response` with the masked columns of its JSON body replaced by their pseudonyms. A body
/// that is not JSON is left alone; a JSON body that cannot be read or is too large is not
/// sent (a 500), so a masked value never leaves unmasked.
pub(crate) async fn mask_response(response: Response, masker: &Masker) -> Response {
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_MASKED_BYTES).await else {
        return unmaskable();
    };
    let mentions = masker
        .columns()
        .iter()
        .any(|column| contains(&bytes, format!("\"{column}\"").as_bytes()))
        || contains(&bytes, b"\"customer\"");
    if !mentions {
        return Response::from_parts(parts, Body::from(bytes));
    }
    let Ok(mut json) = serde_json::from_slice::<Value>(&bytes) else {
        return unmaskable();
    };
    mask_json(&mut json, masker);
    let masked = serde_json::to_vec(&json).unwrap_or_default();
    parts.headers.remove(CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(masked))
}

/// The answer to a request whose answer could not be masked.
fn unmaskable() -> Response {
    use axum::response::IntoResponse as _;
    crate::error::ApiError::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the answer could not be masked for this role",
    )
    .into_response()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Replaces, everywhere in `value`, the string values of masked columns by their pseudonyms
/// (`null` without a key); a search result of kind `customer` has its `id` masked as a
/// customer id and the id replaced in its `title` and `highlight`.
pub(crate) fn mask_json(value: &mut Value, masker: &Masker) {
    match value {
        Value::Array(items) => {
            for item in items {
                mask_json(item, masker);
            }
        }
        Value::Object(object) => {
            let customer_hit = object.get("kind").and_then(Value::as_str) == Some("customer");
            let mut replaced = Vec::new();
            for (key, item) in object.iter_mut() {
                let column = if customer_hit && key == "id" && masker.masks("customer_id") {
                    Some("customer_id")
                } else {
                    masker.masks(key).then_some(key.as_str())
                };
                match (column, &*item) {
                    (Some(column), Value::String(text)) => {
                        let masked = masker.mask(column, text);
                        replaced.push((text.clone(), masked.clone()));
                        *item = masked.map_or(Value::Null, Value::String);
                    }
                    _ => mask_json(item, masker),
                }
            }
            if customer_hit {
                for field in ["title", "highlight"] {
                    if let Some(Value::String(text)) = object.get_mut(field) {
                        for (id, masked) in &replaced {
                            // The id as stored (`17850.0`) and as shown (`17850`).
                            let shown = retail_domain::field::normalise_customer_id(id);
                            for form in [Some(id.as_str()), shown].into_iter().flatten() {
                                if !form.is_empty() {
                                    *text = text.replace(form, masked.as_deref().unwrap_or("…"));
                                }
                            }
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn masker() -> Masker {
        Masker::new(
            Some(std::sync::Arc::from(
                &b"a privacy key of at least thirty-two bytes"[..],
            )),
            vec!["customer_id".to_owned()],
        )
    }

    #[test]
    fn masked_columns_become_pseudonyms_wherever_they_are() {
        let masker = masker();
        let p = masker.mask("customer_id", "17850").unwrap();
        let mut answer = json!({
            "rows": [{"customer_id": "17850", "invoice": "536365"}, {"customer_id": null}],
            "hits": [{"kind": "customer", "id": "17850.0", "title": "Customer 17850",
                      "highlight": "Customer <em>17850</em>",
                      "customer": {"customer_id": "17850", "country": "United Kingdom"}},
                     {"kind": "product", "id": "17850", "title": "17850 MUG"}],
        });
        mask_json(&mut answer, &masker);
        assert_eq!(answer["rows"][0]["customer_id"], p.as_str());
        assert_eq!(answer["rows"][0]["invoice"], "536365");
        assert!(answer["rows"][1]["customer_id"].is_null());
        let hit = &answer["hits"][0];
        assert_eq!(hit["id"], p.as_str());
        assert_eq!(hit["customer"]["customer_id"], p.as_str());
        assert!(!hit.to_string().contains("17850"), "{hit}");
        assert_eq!(answer["hits"][1]["id"], "17850", "a product keeps its code");
        let mut withheld = json!({"customer_id": "17850"});
        mask_json(
            &mut withheld,
            &Masker::new(None, vec!["customer_id".to_owned()]),
        );
        assert!(withheld["customer_id"].is_null());
    }

    #[test]
    fn a_masking_caller_may_not_name_a_masked_value() {
        let masker = masker();
        let uri = |text: &str| text.parse::<Uri>().unwrap();
        let refused =
            |route: &str, path: &str| refusal(&masker, "data_analyst", route, &uri(path)).is_some();
        assert!(refused(
            "/api/v2/recommendations/customers/{customer_id}",
            "/api/v2/recommendations/customers/17850"
        ));
        assert!(refused("/api/v1/sales", "/api/v1/sales?customer_id=17850"));
        assert!(refused("/api/v1/search", "/api/v1/search?q=17850"));
        assert!(refused(
            "/api/v1/search",
            "/api/v1/search?q=17850&type=invoice"
        ));
        assert!(!refused(
            "/api/v1/search",
            "/api/v1/search?q=mug&type=product"
        ));
        assert!(!refused(
            "/api/v1/search/suggest",
            "/api/v1/search/suggest?q=mu&type=product"
        ));
        assert!(!refused("/api/v1/sales", "/api/v1/sales?country=France"));
        assert!(
            refusal(
                &Masker::default(),
                "admin",
                "/api/v1/search",
                &uri("/api/v1/search?q=1")
            )
            .is_none()
        );
    }
}

//! Comparing two records of settings (a checkpoint's and a run's, two workers' build flags),
//! so that a refusal can name every setting that differs.

use serde_json::Value;

/// `(key, first, second)` for every top-level key whose values differ (a key missing on one side
/// is `null` there), in key order; `None` unless both are JSON objects.
pub fn differing_fields(first: &Value, second: &Value) -> Option<Vec<(String, Value, Value)>> {
    let (first, second) = (first.as_object()?, second.as_object()?);
    let keys: std::collections::BTreeSet<&String> = first.keys().chain(second.keys()).collect();
    Some(
        keys.into_iter()
            .filter(|k| first.get(*k) != second.get(*k))
            .map(|k| {
                let value =
                    |m: &serde_json::Map<String, Value>| m.get(k).cloned().unwrap_or(Value::Null);
                (k.clone(), value(first), value(second))
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_each_differing_key_once() {
        let a = json!({ "lr": 1, "seed": 2, "gone": true });
        let b = json!({ "lr": 3, "seed": 2, "new": "x" });
        assert_eq!(
            differing_fields(&a, &b).unwrap(),
            [
                ("gone".into(), json!(true), Value::Null),
                ("lr".into(), json!(1), json!(3)),
                ("new".into(), Value::Null, json!("x")),
            ]
        );
        assert!(differing_fields(&json!(1), &b).is_none());
    }
}

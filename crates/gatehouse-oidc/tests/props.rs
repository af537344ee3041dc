//! Property tests of the parsers that take outside input: callback parameters, Entra's error
//! bodies and pages, and the groups / `_claim_names` claim shapes. Arbitrary input never
//! panics, and what is parsed keeps its invariants.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatehouse_oidc::{CallbackParams, GroupsClaim, OAuthError, find_aadsts_code, find_aadsts_message, groups_claim};
use proptest::prelude::*;
use serde_json::{Map, Value};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)),
        "\\PC{0,30}".prop_map(Value::String),
        Just(Value::String("AADSTS50011: The redirect URI".into())),
        Just(Value::String("src1".into())),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("groups".to_owned()),
                    Just("_claim_names".to_owned()),
                    Just("_claim_sources".to_owned()),
                    Just("hasgroups".to_owned()),
                    Just("error".to_owned()),
                    Just("error_description".to_owned()),
                    Just("error_codes".to_owned()),
                    Just("trace_id".to_owned()),
                    "[a-z_]{1,10}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn callback_query_never_panics(query in "\\PC{0,200}") {
        let _ = CallbackParams::from_query(&query);
    }

    #[test]
    fn callback_query_of_known_keys(keys in prop::collection::vec(prop_oneof![Just("code"), Just("state"), Just("error"), Just("error_description"), Just("session_state")], 0..6),
                                    values in prop::collection::vec("\\PC{0,20}", 6)) {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(keys.iter().zip(values.iter()))
            .finish();
        let parsed = CallbackParams::from_query(&query);
        let duplicated = ["code", "state", "error", "error_description"]
            .iter()
            .any(|k| keys.iter().filter(|x| *x == k).count() > 1);
        prop_assert_eq!(parsed.is_err(), duplicated);
        if let Ok(p) = parsed
            && let Some(i) = keys.iter().position(|k| *k == "state")
        {
            prop_assert_eq!(p.state.as_deref(), Some(values[i].as_str()));
        }
    }

    #[test]
    fn error_body_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = OAuthError::parse_body(&body);
    }

    #[test]
    fn error_body_json_never_panics(value in json_value()) {
        let body = serde_json::to_vec(&value).unwrap();
        if let Some(e) = OAuthError::parse_body(&body) {
            prop_assert!(!e.error.is_empty());
            let _ = e.aadsts();
            let _ = e.summary();
        }
    }

    #[test]
    fn entra_error_bodies_round_trip(code in 1000u32..9_999_999, message in "[ -~]{0,60}", trace in "[a-f0-9-]{0,36}") {
        let body = serde_json::json!({
            "error": "invalid_grant",
            "error_description": format!("AADSTS{code}: {message}\r\nTrace ID: {trace}\r\nCorrelation ID: x\r\nTimestamp: t"),
            "error_codes": [code],
            "trace_id": trace,
        });
        let e = OAuthError::parse_body(body.to_string().as_bytes()).unwrap();
        prop_assert_eq!(e.aadsts(), Some(code));
        let prefix = format!("AADSTS{code}:");
        prop_assert!(e.summary().starts_with(&prefix));
    }

    #[test]
    fn callback_error_descriptions_never_panic(error in "\\PC{0,40}", description in proptest::option::of("\\PC{0,300}")) {
        let e = OAuthError::from_callback(&error, description.as_deref());
        let _ = (e.aadsts(), e.summary());
    }

    #[test]
    fn aadsts_search_never_panics(text in "\\PC{0,300}") {
        let _ = find_aadsts_code(&text);
        if let Some((code, message)) = find_aadsts_message(&text) {
            let prefix = format!("AADSTS{code}: ");
            prop_assert!(message.starts_with(&prefix));
        }
    }

    #[test]
    fn aadsts_found_in_pages(code in 1000u32..99_999_999, before in "[^A]{0,50}", message in "[a-zA-Z ]{0,40}") {
        let page = format!("<p>{before}</p><p id=\"error-code\">AADSTS{code}: {message}</p>");
        let found = find_aadsts_message(&page);
        prop_assert_eq!(found.map(|(c, _)| c), Some(code));
    }

    #[test]
    fn groups_claim_shapes_never_panic(claims in prop::collection::btree_map(
        prop_oneof![Just("groups".to_owned()), Just("_claim_names".to_owned()), Just("hasgroups".to_owned()), "[a-z]{1,5}"],
        json_value(), 0..5)) {
        let map: Map<String, Value> = claims.into_iter().collect();
        match groups_claim(&map) {
            GroupsClaim::Listed(ids) => {
                prop_assert!(ids.iter().all(|g| !g.is_empty()));
                prop_assert!(map.contains_key("groups"));
            }
            GroupsClaim::Overage => {
                prop_assert!(map.contains_key("_claim_names") || map.get("hasgroups") == Some(&Value::Bool(true)));
            }
            GroupsClaim::Absent => {}
        }
    }
}

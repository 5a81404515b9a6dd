//! Properties of the grammar over generated input: no input makes the parser panic or answer
//! with anything but INVALID_PARAMETER_VALUE, and every filter the grammar can express reads back
//! from its rendering as the same filter.

use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;

use super::lex::literal_reads_back;
use super::{
    Comparison, Filter, Key, KeyKind, Op, SearchEntity, Value, parse_filter, parse_order_by,
};
use crate::Code;

const ENTITIES: [SearchEntity; 7] = [
    SearchEntity::Runs,
    SearchEntity::Experiments,
    SearchEntity::LoggedModels,
    SearchEntity::RegisteredModels,
    SearchEntity::ModelVersions,
    SearchEntity::Traces,
    SearchEntity::EvaluationDatasets,
];

/// Fragments that come close to valid filters, so that generated soup reaches deep into the
/// parser rather than failing on the first character.
const FRAGMENTS: &[&str] = &[
    "metrics.",
    "params.",
    "tags.",
    "attributes.",
    "datasets.",
    "trace.",
    "metadata.",
    "request_metadata.",
    "span.",
    "span.attributes.",
    "feedback.",
    "expectation.",
    "issue.id",
    "`mlflow.sourceRun`",
    "RLIKE",
    "timestamp_ms",
    "run_id",
    "tag.",
    "metric.",
    "rmse",
    "a.b",
    "`",
    "``",
    "`my key`",
    "\"",
    "\"x\"",
    "'",
    "''",
    "'v'",
    "\\",
    "\\'",
    "(",
    ")",
    ",",
    ";",
    ".",
    "=",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "==",
    "<>",
    "LIKE",
    "ilike",
    "IN",
    "NOT",
    "not in",
    "IS",
    "NULL",
    "IS NOT NULL",
    "AND",
    "and",
    "OR",
    "ASC",
    "desc",
    "1",
    "-1.5e3",
    ".5",
    "5.",
    "1e999",
    "-",
    "+",
    "status",
    "run_id",
    "name",
    "start_time",
    "version_number",
    "experiment_id",
    "creation_time",
    "é",
    "中",
    "\u{0}",
    "\n",
    " ",
    "  ",
    "\t",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..24)
        .prop_map(|fragments| fragments.concat())
}

fn assert_total(input: &str) {
    for entity in ENTITIES {
        if let Err(error) = parse_filter(entity, input) {
            assert_eq!(
                error.code,
                Code::InvalidParameterValue,
                "{entity:?} {input:?}"
            );
        }
        if let Err(error) = parse_order_by(entity, input) {
            assert_eq!(
                error.code,
                Code::InvalidParameterValue,
                "{entity:?} {input:?}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_strings_never_panic(input in any::<String>()) {
        assert_total(&input);
    }

    #[test]
    fn printable_unicode_never_panics(input in "\\PC{0,40}") {
        assert_total(&input);
    }

    #[test]
    fn near_valid_token_soup_never_panics(input in token_soup()) {
        assert_total(&input);
    }
}

// ----------------------------------------------------------------------------------------------
// Generated valid filters

/// Free-form names for metrics, params and tags, including characters that force quoting.
fn free_name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_ .\\-/:'\\\\é中]{0,12}"
}

/// Scalar string values; only those MLflow's syntax can express (a value holding both kinds of
/// quote in the wrong places cannot be written at all).
fn scalar_string() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 %_.'\"\\\\é\n]{0,12}".prop_filter("expressible as a literal", |text| {
        literal_reads_back(text, b'\'', true) || literal_reads_back(text, b'"', true)
    })
}

fn list_items() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec("[a-zA-Z0-9 ,()'\"\\\\é\n\r\t]{0,8}", 1..4)
}

fn any_number() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |n| n.is_finite()),
        (-1_000_000i64..1_000_000).prop_map(|n| n as f64),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
    ]
}

fn whole_number() -> impl Strategy<Value = f64> {
    (-(1i64 << 53)..(1i64 << 53)).prop_map(|n| n as f64)
}

fn numeric(key: Key, numbers: BoxedStrategy<f64>) -> BoxedStrategy<Comparison> {
    let ops = vec![Op::Eq, Op::Ne, Op::Lt, Op::Le, Op::Gt, Op::Ge];
    (prop::sample::select(ops), numbers)
        .prop_map(move |(op, number)| Comparison {
            key: key.clone(),
            op,
            value: Value::Num(number),
        })
        .boxed()
}

/// String comparisons on `key`, with `IS [NOT] NULL` and lists where the key takes them.
fn string(key: Key, takes_null: bool, takes_list: bool) -> BoxedStrategy<Comparison> {
    let scalar_ops = vec![Op::Eq, Op::Ne, Op::Like, Op::ILike];
    let scalar_key = key.clone();
    let mut choices: Vec<BoxedStrategy<Comparison>> = vec![
        (prop::sample::select(scalar_ops), scalar_string())
            .prop_map(move |(op, text)| Comparison {
                key: scalar_key.clone(),
                op,
                value: Value::Str(text),
            })
            .boxed(),
    ];
    if takes_null {
        let null_key = key.clone();
        choices.push(
            prop::sample::select(&[Op::IsNull, Op::IsNotNull][..])
                .prop_map(move |op| Comparison {
                    key: null_key.clone(),
                    op,
                    value: Value::None,
                })
                .boxed(),
        );
    }
    if takes_list {
        choices.push(
            (prop::sample::select(&[Op::In, Op::NotIn][..]), list_items())
                .prop_map(move |(op, items)| Comparison {
                    key: key.clone(),
                    op,
                    value: Value::List(items),
                })
                .boxed(),
        );
    }
    prop::strategy::Union::new(choices).boxed()
}

fn attribute(name: &str) -> Key {
    Key::new(KeyKind::Attribute, name)
}

fn named(kind: KeyKind) -> impl Strategy<Value = Key> {
    free_name().prop_map(move |name| Key::new(kind, name))
}

fn run_comparison() -> BoxedStrategy<Comparison> {
    prop_oneof![
        named(KeyKind::Metric).prop_flat_map(|key| numeric(key, any_number().boxed())),
        named(KeyKind::Param).prop_flat_map(|key| string(key, true, false)),
        named(KeyKind::Tag).prop_flat_map(|key| string(key, true, false)),
        prop::sample::select(&["status", "run_name", "user_id", "artifact_uri"][..])
            .prop_flat_map(|name| string(attribute(name), false, false)),
        string(attribute("run_id"), false, true),
        prop::sample::select(&["start_time", "end_time"][..])
            .prop_flat_map(|name| numeric(attribute(name), any_number().boxed())),
        prop::sample::select(&["name", "digest", "context"][..]).prop_flat_map(|name| string(
            Key::new(KeyKind::Dataset, name),
            false,
            true
        )),
    ]
    .boxed()
}

fn experiment_comparison() -> BoxedStrategy<Comparison> {
    let ids = || prop::collection::vec("[0-9]{1,6}", 1..4);
    prop_oneof![
        string(attribute("name"), false, false),
        (prop::sample::select(&[Op::Eq, Op::Ne][..]), "[0-9]{1,6}").prop_map(|(op, id)| {
            Comparison {
                key: attribute("experiment_id"),
                op,
                value: Value::Str(id),
            }
        }),
        (prop::sample::select(&[Op::In, Op::NotIn][..]), ids()).prop_map(|(op, ids)| {
            Comparison {
                key: attribute("experiment_id"),
                op,
                value: Value::List(ids),
            }
        }),
        prop::sample::select(&["creation_time", "last_update_time"][..])
            .prop_flat_map(|name| numeric(attribute(name), whole_number().boxed())),
        named(KeyKind::Tag).prop_flat_map(|key| string(key, true, false)),
    ]
    .boxed()
}

fn registered_model_comparison() -> BoxedStrategy<Comparison> {
    prop_oneof![
        string(attribute("name"), false, true),
        named(KeyKind::Tag).prop_flat_map(|key| string(key, false, false)),
    ]
    .boxed()
}

fn model_version_comparison() -> BoxedStrategy<Comparison> {
    prop_oneof![
        prop::sample::select(&["name", "run_id"][..]).prop_flat_map(|name| string(
            attribute(name),
            false,
            true
        )),
        string(attribute("source_path"), false, false),
        numeric(
            attribute("version_number"),
            (0i64..100_000).prop_map(|n| n as f64).boxed()
        ),
        named(KeyKind::Tag).prop_flat_map(|key| string(key, false, false)),
    ]
    .boxed()
}

fn logged_model_comparison() -> BoxedStrategy<Comparison> {
    prop_oneof![
        named(KeyKind::Metric).prop_flat_map(|key| numeric(key, any_number().boxed())),
        named(KeyKind::Param).prop_flat_map(|key| string(key, false, true)),
        named(KeyKind::Tag).prop_flat_map(|key| string(key, false, true)),
        prop::sample::select(&["name", "model_id", "model_type", "status", "source_run_id"][..])
            .prop_flat_map(|name| string(attribute(name), false, true)),
        prop::sample::select(&["creation_timestamp", "last_updated_timestamp"][..])
            .prop_flat_map(|name| numeric(attribute(name), any_number().boxed())),
    ]
    .boxed()
}

/// Trace key names that MLflow does not move elsewhere (`name`, `run_id`, `timestamp`… are
/// relocated whatever their prefix, so they cannot read back as written).
fn trace_named(kind: KeyKind) -> impl Strategy<Value = Key> {
    free_name()
        .prop_filter("not a relocated name", |name| {
            !matches!(
                name.to_lowercase().as_str(),
                "name" | "prompt" | "run_id" | "text" | "timestamp" | "execution_time" | "end_time"
            )
        })
        .prop_map(move |name| Key::new(kind, name))
}

fn trace_comparison() -> BoxedStrategy<Comparison> {
    prop_oneof![
        trace_named(KeyKind::Tag).prop_flat_map(|key| string(key, true, false)),
        trace_named(KeyKind::Metadata).prop_flat_map(|key| string(key, true, false)),
        prop::sample::select(&["status", "request_id", "client_request_id"][..])
            .prop_flat_map(|name| string(attribute(name), false, true)),
        prop::sample::select(&["timestamp_ms", "execution_time_ms", "end_time_ms"][..])
            .prop_flat_map(|name| numeric(attribute(name), any_number().boxed())),
        prop::sample::select(&["name", "type", "status"][..]).prop_flat_map(|name| string(
            Key::new(KeyKind::Span, name),
            false,
            true
        )),
    ]
    .boxed()
}

fn filter_of(comparisons: BoxedStrategy<Comparison>) -> impl Strategy<Value = Filter> {
    prop::collection::vec(comparisons, 0..5).prop_map(|clauses| Filter { clauses })
}

fn assert_round_trip(entity: SearchEntity, filter: &Filter) {
    let rendered = filter.to_filter_string();
    match parse_filter(entity, &rendered) {
        Ok(parsed) => assert_eq!(&parsed, filter, "{entity:?} {rendered:?}"),
        Err(error) => panic!("{entity:?} rejected its own rendering {rendered:?}: {error}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn run_filters_round_trip(filter in filter_of(run_comparison())) {
        assert_round_trip(SearchEntity::Runs, &filter);
    }

    #[test]
    fn experiment_filters_round_trip(filter in filter_of(experiment_comparison())) {
        assert_round_trip(SearchEntity::Experiments, &filter);
    }

    #[test]
    fn registered_model_filters_round_trip(filter in filter_of(registered_model_comparison())) {
        assert_round_trip(SearchEntity::RegisteredModels, &filter);
    }

    #[test]
    fn model_version_filters_round_trip(filter in filter_of(model_version_comparison())) {
        assert_round_trip(SearchEntity::ModelVersions, &filter);
    }

    #[test]
    fn logged_model_filters_round_trip(filter in filter_of(logged_model_comparison())) {
        assert_round_trip(SearchEntity::LoggedModels, &filter);
    }

    #[test]
    fn trace_filters_round_trip(filter in filter_of(trace_comparison())) {
        assert_round_trip(SearchEntity::Traces, &filter);
    }
}

//! The specification of the filter and order_by grammar, entity by entity: every accepted form
//! with the AST it reads as, and every rejection with the message MLflow's server gives for it.
//! Each line shows a parsed clause as `Kind "name" OP value`, clauses joined by `&`.

use insta::assert_snapshot;

use super::SearchEntity::{self, *};
use super::{parse_filter, parse_order_by};

fn filter(entity: SearchEntity, input: &str) -> String {
    match parse_filter(entity, input) {
        Ok(filter) => filter
            .clauses
            .iter()
            .map(|clause| {
                let key = &clause.key;
                format!(
                    "{:?} {:?} {} {:?}",
                    key.kind, key.name, clause.op, clause.value
                )
            })
            .collect::<Vec<_>>()
            .join(" & "),
        Err(error) => format!("{}: {}", error.code, error.message),
    }
}

fn order_by(entity: SearchEntity, input: &str) -> String {
    match parse_order_by(entity, input) {
        Ok(order) => {
            let direction = if order.ascending { "ASC" } else { "DESC" };
            format!("{:?} {:?} {direction}", order.key.kind, order.key.name)
        }
        Err(error) => format!("{}: {}", error.code, error.message),
    }
}

/// An empty string is no filter; MLflow cannot parse one made of spaces.
#[test]
fn empty_filter_matches_everything_but_blank_is_rejected() {
    assert_snapshot!(filter(Runs, ""), @"");
    assert_snapshot!(filter(Experiments, ""), @"");
    assert_snapshot!(filter(LoggedModels, ""), @"");
    assert_snapshot!(filter(Runs, "   "), @"INVALID_PARAMETER_VALUE: Invalid filter '   '. Could not be parsed.");
    assert_snapshot!(filter(LoggedModels, "  "), @"INVALID_PARAMETER_VALUE: Invalid filter string: '  '. Expected a single SQL expression.");
}

#[test]
fn runs_accept_every_key_kind_and_prefix_alias() {
    assert_snapshot!(filter(Runs, "metrics.rmse < 1"), @r#"Metric "rmse" < Num(1.0)"#);
    assert_snapshot!(filter(Runs, "metric.rmse >= -0.5"), @r#"Metric "rmse" >= Num(-0.5)"#);
    assert_snapshot!(filter(Runs, "params.lr = '0.01'"), @r#"Param "lr" = Str("0.01")"#);
    assert_snapshot!(filter(Runs, "param.lr != '0.01'"), @r#"Param "lr" != Str("0.01")"#);
    assert_snapshot!(filter(Runs, "parameters.lr LIKE '0.%'"), @r#"Param "lr" LIKE Str("0.%")"#);
    assert_snapshot!(filter(Runs, "parameter.lr ILIKE '0.%'"), @r#"Param "lr" ILIKE Str("0.%")"#);
    assert_snapshot!(filter(Runs, "tags.mlflow.runName = 'train'"), @r#"Tag "mlflow.runName" = Str("train")"#);
    assert_snapshot!(filter(Runs, "tag.team = 'a'"), @r#"Tag "team" = Str("a")"#);
    assert_snapshot!(filter(Runs, "attributes.status = 'FINISHED'"), @r#"Attribute "status" = Str("FINISHED")"#);
    assert_snapshot!(filter(Runs, "attribute.user_id = 'me'"), @r#"Attribute "user_id" = Str("me")"#);
    assert_snapshot!(filter(Runs, "attr.artifact_uri LIKE 's3://%'"), @r#"Attribute "artifact_uri" LIKE Str("s3://%")"#);
    assert_snapshot!(filter(Runs, "run.run_name = 'x'"), @r#"Attribute "run_name" = Str("x")"#);
    assert_snapshot!(filter(Runs, "datasets.name = 'train'"), @r#"Dataset "name" = Str("train")"#);
    assert_snapshot!(filter(Runs, "dataset.digest IN ('abc', 'def')"), @r#"Dataset "digest" IN List(["abc", "def"])"#);
    assert_snapshot!(filter(Runs, "datasets.context NOT IN ('eval')"), @r#"Dataset "context" NOT IN List(["eval"])"#);
    assert_snapshot!(filter(Runs, "`metrics`.rmse < 1"), @r#"Metric "rmse" < Num(1.0)"#);
}

#[test]
fn runs_attribute_aliases_resolve_to_one_name() {
    assert_snapshot!(filter(Runs, "status = 'RUNNING'"), @r#"Attribute "status" = Str("RUNNING")"#);
    assert_snapshot!(filter(Runs, "run_name = 'a'"), @r#"Attribute "run_name" = Str("a")"#);
    assert_snapshot!(filter(Runs, "`Run Name` = 'a'"), @r#"Attribute "run_name" = Str("a")"#);
    assert_snapshot!(filter(Runs, "`run name` = 'a'"), @r#"Attribute "run_name" = Str("a")"#);
    assert_snapshot!(filter(Runs, r#""Run name" = 'a'"#), @r#"Attribute "run_name" = Str("a")"#);
    assert_snapshot!(filter(Runs, "created > 5"), @r#"Attribute "start_time" > Num(5.0)"#);
    assert_snapshot!(filter(Runs, "Created > 5"), @r#"Attribute "start_time" > Num(5.0)"#);
    assert_snapshot!(filter(Runs, "start_time >= 1700000000000"), @r#"Attribute "start_time" >= Num(1700000000000.0)"#);
    assert_snapshot!(filter(Runs, "end_time <= 1700000000000.5"), @r#"Attribute "end_time" <= Num(1700000000000.5)"#);
    assert_snapshot!(filter(Runs, "run_id IN ('a', 'b')"), @r#"Attribute "run_id" IN List(["a", "b"])"#);
    assert_snapshot!(filter(Runs, "run_id NOT IN ('a')"), @r#"Attribute "run_id" NOT IN List(["a"])"#);
    assert_snapshot!(filter(Runs, "run_id = 'a'"), @r#"Attribute "run_id" = Str("a")"#);
}

#[test]
fn runs_params_and_tags_test_for_absence() {
    assert_snapshot!(filter(Runs, "tags.x IS NULL"), @r#"Tag "x" IS NULL None"#);
    assert_snapshot!(filter(Runs, "params.x is not null"), @r#"Param "x" IS NOT NULL None"#);
    assert_snapshot!(filter(Runs, "tags.x IS NULL AND params.y IS NOT NULL"), @r#"Tag "x" IS NULL None & Param "y" IS NOT NULL None"#);
    assert_snapshot!(filter(Runs, "metrics.x IS NULL"), @"INVALID_PARAMETER_VALUE: IS NULL / IS NOT NULL is only supported for tags and params, not for 'metric' 'x'");
    assert_snapshot!(filter(Runs, "status IS NOT NULL"), @"INVALID_PARAMETER_VALUE: IS NULL / IS NOT NULL is only supported for tags and params, not for 'attribute' 'status'");
    assert_snapshot!(filter(Runs, "datasets.name IS NULL"), @"INVALID_PARAMETER_VALUE: IS NULL / IS NOT NULL is only supported for tags and params, not for 'dataset' 'name'");
}

#[test]
fn runs_reject_unknown_keys() {
    assert_snapshot!(filter(Runs, "foo = 'x'"), @"INVALID_PARAMETER_VALUE: Invalid attribute key 'foo' specified. Valid keys are '{'Created', 'Run Name', 'Run name', 'artifact_uri', 'created', 'end_time', 'run name', 'run_id', 'run_name', 'start_time', 'status', 'user_id'}'");
    assert_snapshot!(filter(Runs, "foo.bar = 'x'"), @"INVALID_PARAMETER_VALUE: Invalid entity type 'foo'. Valid values are ['metric', 'parameter', 'tag', 'attribute', 'dataset']");
    assert_snapshot!(filter(Runs, "dataset.foo = 'x'"), @"INVALID_PARAMETER_VALUE: Invalid dataset key 'foo' specified. Valid keys are '{'context', 'digest', 'name'}'");
    assert_snapshot!(filter(Runs, "lifecycle_stage = 'active'"), @"INVALID_PARAMETER_VALUE: Invalid attribute key 'lifecycle_stage' specified. Valid keys are '{'Created', 'Run Name', 'Run name', 'artifact_uri', 'created', 'end_time', 'run name', 'run_id', 'run_name', 'start_time', 'status', 'user_id'}'");
    assert_snapshot!(filter(Runs, r#""tags".x = 'a'"#), @r#"INVALID_PARAMETER_VALUE: Invalid entity type '"tags"'. Valid values are ['metric', 'parameter', 'tag', 'attribute', 'dataset']"#);
}

#[test]
fn runs_reject_values_of_the_wrong_type() {
    assert_snapshot!(filter(Runs, "metrics.x = '1'"), @"INVALID_PARAMETER_VALUE: Expected numeric value type for metric. Found '1'");
    assert_snapshot!(filter(Runs, "metrics.x IN ('1')"), @"INVALID_PARAMETER_VALUE: Expected numeric value type for metric. Found ('1')");
    assert_snapshot!(filter(Runs, "tags.x = 1"), @"INVALID_PARAMETER_VALUE: Expected a quoted string value for tag (e.g. 'my-value'). Got value 1");
    assert_snapshot!(filter(Runs, "params.x IN ('a')"), @"INVALID_PARAMETER_VALUE: Expected a quoted string value for parameter (e.g. 'my-value'). Got value ('a')");
    assert_snapshot!(filter(Runs, "params.a = x"), @"INVALID_PARAMETER_VALUE: Parameter value is either not quoted or unidentified quote types used for string value x. Use either single or double quotes.");
    assert_snapshot!(filter(Runs, "start_time = '1'"), @"INVALID_PARAMETER_VALUE: Expected numeric value type for numeric attribute: start_time. Found '1'");
    assert_snapshot!(filter(Runs, "start_time IN (1)"), @"INVALID_PARAMETER_VALUE: Expected numeric value type for numeric attribute: start_time. Found (1)");
    assert_snapshot!(filter(Runs, "status = 1"), @"INVALID_PARAMETER_VALUE: Expected a quoted string value for attributes. Got value 1");
    assert_snapshot!(filter(Runs, "status IN ('a')"), @"INVALID_PARAMETER_VALUE: Only ['run_id'] attributes support comparison with a list of quoted string values.");
    assert_snapshot!(filter(Runs, "datasets.context = 1"), @"INVALID_PARAMETER_VALUE: Expected a quoted string value for dataset attributes. Got value 1");
    assert_snapshot!(filter(Runs, "tags.x = `a`"), @"INVALID_PARAMETER_VALUE: Parameter value is either not quoted or unidentified quote types used for string value `a`. Use either single or double quotes.");
}

#[test]
fn runs_reject_comparators_the_key_kind_does_not_take() {
    assert_snapshot!(filter(Runs, "metrics.a LIKE 1"), @"INVALID_PARAMETER_VALUE: Invalid comparator 'LIKE' not one of '{'=', '!=', '<', '<=', '>', '>='}'");
    assert_snapshot!(filter(Runs, "metrics.a == 1"), @"INVALID_PARAMETER_VALUE: Invalid comparator '==' not one of '{'=', '!=', '<', '<=', '>', '>='}'");
    assert_snapshot!(filter(Runs, "metrics.a <> 1"), @"INVALID_PARAMETER_VALUE: Invalid comparator '<>' not one of '{'=', '!=', '<', '<=', '>', '>='}'");
    assert_snapshot!(filter(Runs, "params.a NOT LIKE 'x'"), @"INVALID_PARAMETER_VALUE: Invalid comparator 'NOT LIKE' not one of '{'=', '!=', 'LIKE', 'ILIKE', 'IS NULL', 'IS NOT NULL'}'");
    assert_snapshot!(filter(Runs, "params.a < 'x'"), @"INVALID_PARAMETER_VALUE: Invalid comparator '<' not one of '{'=', '!=', 'LIKE', 'ILIKE', 'IS NULL', 'IS NOT NULL'}'");
    assert_snapshot!(filter(Runs, "tags.a RLIKE 'x'"), @"INVALID_PARAMETER_VALUE: Invalid comparator 'RLIKE' not one of '{'=', '!=', 'LIKE', 'ILIKE', 'IS NULL', 'IS NOT NULL'}'");
    assert_snapshot!(filter(Runs, "status < 'a'"), @"INVALID_PARAMETER_VALUE: Invalid comparator '<' not one of '{'=', '!=', 'LIKE', 'ILIKE', 'IN', 'NOT IN'}'");
    assert_snapshot!(filter(Runs, "start_time LIKE 1"), @"INVALID_PARAMETER_VALUE: Invalid comparator 'LIKE' not one of '{'=', '!=', '<', '<=', '>', '>='}'");
    assert_snapshot!(filter(Runs, "datasets.name > 'a'"), @"INVALID_PARAMETER_VALUE: Invalid comparator '>' not one of '{'=', '!=', 'LIKE', 'ILIKE', 'IN', 'NOT IN'}'");
    assert_snapshot!(filter(Runs, "run_id = ('a')"), @"INVALID_PARAMETER_VALUE: Invalid comparator '=' for 'run_id' with a list of values. A list of quoted string values is compared with IN or NOT IN.");
    assert_snapshot!(filter(Runs, "run_id IN 'a'"), @"INVALID_PARAMETER_VALUE: Invalid clause(s) in filter string: 'run_id', 'IN', ''a''");
}

/// List items follow Python literal rules, unlike single values.
#[test]
fn lists_are_python_string_tuples() {
    assert_snapshot!(filter(Runs, "run_id IN ('a','b',)"), @r#"Attribute "run_id" IN List(["a", "b"])"#);
    assert_snapshot!(filter(Runs, r#"run_id IN ("a", 'b')"#), @r#"Attribute "run_id" IN List(["a", "b"])"#);
    assert_snapshot!(filter(Runs, r#"run_id IN ('it\'s')"#), @r#"Attribute "run_id" IN List(["it's"])"#);
    assert_snapshot!(filter(Runs, "run_id IN ('a''b')"), @r#"Attribute "run_id" IN List(["ab"])"#);
    assert_snapshot!(filter(Runs, "run_id IN ('a' 'b', 'c')"), @r#"Attribute "run_id" IN List(["ab", "c"])"#);
    assert_snapshot!(filter(Runs, r#"run_id IN ('a\\', 'b')"#), @r#"Attribute "run_id" IN List(["a\\", "b"])"#);
    assert_snapshot!(filter(Runs, r#"run_id IN ('a\nb')"#), @r#"Attribute "run_id" IN List(["a\nb"])"#);
    assert_snapshot!(filter(Runs, "run_id IN ()"), @"INVALID_PARAMETER_VALUE: While parsing a list in the query, expected a non-empty list of string values, but got empty list");
    assert_snapshot!(filter(Runs, "run_id IN ('a', 1)"), @"INVALID_PARAMETER_VALUE: While parsing a list in the query, expected string value, punctuation, or whitespace, but got different type in list: ('a', 1)");
    assert_snapshot!(filter(Runs, "run_id IN ('a' ; 'b')"), @"INVALID_PARAMETER_VALUE: While parsing a list in the query, expected a non-empty list of string values, but got ill-formed list.");
    assert_snapshot!(filter(Runs, "run_id IN (,)"), @"INVALID_PARAMETER_VALUE: While parsing a list in the query, expected a non-empty list of string values, but got ill-formed list.");
    assert_snapshot!(filter(Runs, "run_id IN ('a'"), @"INVALID_PARAMETER_VALUE: Invalid clause(s) in filter string: 'run_id', 'IN', '('");
}

/// MLflow unescapes nothing in a single value; the tokenizer only decides where it ends.
#[test]
fn string_values_are_taken_verbatim_between_their_quotes() {
    assert_snapshot!(filter(Runs, "tags.x = 'it''s'"), @r#"Tag "x" = Str("it''s")"#);
    assert_snapshot!(filter(Runs, r#"tags.x = 'it\'s'"#), @r#"Tag "x" = Str("it\\'s")"#);
    assert_snapshot!(filter(Runs, r#"tags.x = "it's""#), @r#"Tag "x" = Str("it's")"#);
    assert_snapshot!(filter(Runs, "tags.x = ''"), @r#"Tag "x" = Str("")"#);
    assert_snapshot!(filter(Runs, "tags.x = '%a_b%'"), @r#"Tag "x" = Str("%a_b%")"#);
    assert_snapshot!(filter(Runs, r#"tags.x = 'x\'"#), @r#"Tag "x" = Str("x\\")"#);
    assert_snapshot!(filter(Runs, "tags.x = 'a AND b' AND tags.y = 'c'"), @r#"Tag "x" = Str("a AND b") & Tag "y" = Str("c")"#);
    assert_snapshot!(filter(Runs, "tags.x = 'ünï çødé'"), @r#"Tag "x" = Str("ünï çødé")"#);
    assert_snapshot!(filter(Runs, "tags.x = 'never closed"), @"INVALID_PARAMETER_VALUE: Invalid clause(s) in filter string: 'tags.x', '=', ''never closed'");
}

#[test]
fn keys_may_be_quoted_and_contain_dots() {
    assert_snapshot!(filter(Runs, "tags.`my key` = 'a'"), @r#"Tag "my key" = Str("a")"#);
    assert_snapshot!(filter(Runs, r#"tags."my key" = 'a'"#), @r#"Tag "my key" = Str("a")"#);
    assert_snapshot!(filter(Runs, "params.`learning-rate` = '1'"), @r#"Param "learning-rate" = Str("1")"#);
    assert_snapshot!(filter(Runs, "tags.`a.b` = 'x'"), @r#"Tag "a.b" = Str("x")"#);
    assert_snapshot!(filter(Runs, "tags.a.b.c = 'x'"), @r#"Tag "a.b.c" = Str("x")"#);
    assert_snapshot!(filter(Runs, "metrics.1abc > 1"), @r#"Metric "1abc" > Num(1.0)"#);
    assert_snapshot!(filter(Runs, "metrics.é > 1"), @r#"Metric "é" > Num(1.0)"#);
    assert_snapshot!(filter(Runs, "tags.`` = 'x'"), @r#"Tag "" = Str("x")"#);
    assert_snapshot!(filter(Runs, "tag.`mlflow.prompt.is_prompt` != 'true'"), @r#"Tag "mlflow.prompt.is_prompt" != Str("true")"#);
    assert_snapshot!(filter(Runs, "params.learning-rate = 'x'"), @"INVALID_PARAMETER_VALUE: Invalid clause(s) in filter string: 'params.learning', '-'");
    assert_snapshot!(filter(Runs, "tags . x = 'a'"), @"INVALID_PARAMETER_VALUE: Invalid clause(s) in filter string: 'tags', '.'");
}

#[test]
fn numbers_follow_mlflow_tokenizer() {
    assert_snapshot!(filter(Runs, "metrics.a = 1"), @r#"Metric "a" = Num(1.0)"#);
    assert_snapshot!(filter(Runs, "metrics.a = -1.5e3"), @r#"Metric "a" = Num(-1500.0)"#);
    assert_snapshot!(filter(Runs, "metrics.a = 1E5"), @r#"Metric "a" = Num(100000.0)"#);
    assert_snapshot!(filter(Runs, "metrics.a = 1e-5"), @r#"Metric "a" = Num(1e-5)"#);
    assert_snapshot!(filter(Runs, "metrics.a = .5"), @r#"Metric "a" = Num(0.5)"#);
    assert_snapshot!(filter(Runs, "metrics.a = 5."), @r#"Metric "a" = Num(5.0)"#);
    assert_snapshot!(filter(Runs, "metrics.a = 1e999"), @r#"Metric "a" = Num(inf)"#);
    assert_snapshot!(filter(Runs, "metrics.a = +1"), @"INVALID_PARAMETER_VALUE: Invalid clause(s) in filter string: 'metrics.a', '=', '+'");
    assert_snapshot!(filter(Runs, "metrics.a = - 1"), @"INVALID_PARAMETER_VALUE: Invalid clause(s) in filter string: 'metrics.a', '=', '-'");
    assert_snapshot!(filter(Runs, "metrics.a = 0x10"), @"INVALID_PARAMETER_VALUE: Expected numeric value type for metric. Found 0x10");
    assert_snapshot!(filter(Runs, "metrics.a = 1abc"), @"INVALID_PARAMETER_VALUE: Expected numeric value type for metric. Found 1abc");
}

/// Like MLflow, stray or missing ANDs between comparisons are tolerated; OR, parentheses and NOT are not.
#[test]
fn clauses_join_with_and_only() {
    assert_snapshot!(filter(Runs, "metrics.a<1 and metrics.b>2 AnD tags.c='d'"), @r#"Metric "a" < Num(1.0) & Metric "b" > Num(2.0) & Tag "c" = Str("d")"#);
    assert_snapshot!(filter(Runs, "metrics.a < 1 AND"), @r#"Metric "a" < Num(1.0)"#);
    assert_snapshot!(filter(Runs, "AND metrics.a < 1"), @r#"Metric "a" < Num(1.0)"#);
    assert_snapshot!(filter(Runs, "metrics.a < 1 AND AND metrics.b < 2"), @r#"Metric "a" < Num(1.0) & Metric "b" < Num(2.0)"#);
    assert_snapshot!(filter(Runs, "metrics.a < 1 metrics.b < 2"), @r#"Metric "a" < Num(1.0) & Metric "b" < Num(2.0)"#);
    assert_snapshot!(filter(Runs, "params.a = 'b' or params.c = 'd'"), @"INVALID_PARAMETER_VALUE: Invalid clause(s) in filter string: 'or'");
    assert_snapshot!(filter(Runs, "params.a = 'b' OR params.c = 'd'"), @"INVALID_PARAMETER_VALUE: Invalid clause(s) in filter string: 'OR'");
    assert_snapshot!(filter(Runs, "(params.a = 'x')"), @"INVALID_PARAMETER_VALUE: Invalid clause(s) in filter string: '('");
    assert_snapshot!(filter(Runs, "NOT params.a = 'x'"), @"INVALID_PARAMETER_VALUE: Invalid clause(s) in filter string: 'NOT', 'params'");
    assert_snapshot!(filter(Runs, "metrics.a < 1 < 2"), @"INVALID_PARAMETER_VALUE: Invalid clause(s) in filter string: '<'");
    assert_snapshot!(filter(Runs, "1 < metrics.a"), @"INVALID_PARAMETER_VALUE: Invalid attribute key '1' specified. Valid keys are '{'Created', 'Run Name', 'Run name', 'artifact_uri', 'created', 'end_time', 'run name', 'run_id', 'run_name', 'start_time', 'status', 'user_id'}'");
    assert_snapshot!(filter(Runs, "metrics.a"), @"INVALID_PARAMETER_VALUE: Invalid clause(s) in filter string: 'metrics.a'");
    assert_snapshot!(filter(Runs, "metrics.a <"), @"INVALID_PARAMETER_VALUE: Invalid clause(s) in filter string: 'metrics.a', '<'");
    assert_snapshot!(filter(Runs, "metrics.a < 1; metrics.b < 2"), @"INVALID_PARAMETER_VALUE: Search filter contained multiple expression 'metrics.a < 1; metrics.b < 2'. Provide AND-ed expression list.");
    assert_snapshot!(filter(Runs, "metrics.a < 1;"), @"INVALID_PARAMETER_VALUE: Invalid clause(s) in filter string: ';'");
    assert_snapshot!(filter(Experiments, "tags.x = 'a' or name = 'b'"), @"INVALID_PARAMETER_VALUE: Invalid clause(s) in filter string: or");
    assert_snapshot!(filter(LoggedModels, "tags.x = 'a' or name = 'b'"), @r#"INVALID_PARAMETER_VALUE: Invalid filter string: "tags.x = 'a' or name = 'b'". Expected a list of comparisons separated by 'AND' (e.g. 'metrics.loss > 0.1 AND params.lr = 0.01')."#);
    assert_snapshot!(filter(LoggedModels, "metrics.a < 1; metrics.b < 2"), @"INVALID_PARAMETER_VALUE: Invalid filter string: 'metrics.a < 1; metrics.b < 2'. Expected a single SQL expression.");
}

#[test]
fn experiments_accept_name_id_times_and_tags() {
    assert_snapshot!(filter(Experiments, "name = 'x'"), @r#"Attribute "name" = Str("x")"#);
    assert_snapshot!(filter(Experiments, "attribute.name LIKE 'x%'"), @r#"Attribute "name" LIKE Str("x%")"#);
    assert_snapshot!(filter(Experiments, "name ILIKE '%X%'"), @r#"Attribute "name" ILIKE Str("%X%")"#);
    assert_snapshot!(filter(Experiments, "experiment_id = '1'"), @r#"Attribute "experiment_id" = Str("1")"#);
    assert_snapshot!(filter(Experiments, "experiment_id IN ('1', '2')"), @r#"Attribute "experiment_id" IN List(["1", "2"])"#);
    assert_snapshot!(filter(Experiments, "experiment_id NOT IN ('3')"), @r#"Attribute "experiment_id" NOT IN List(["3"])"#);
    assert_snapshot!(filter(Experiments, "creation_time > 1700000000000"), @r#"Attribute "creation_time" > Num(1700000000000.0)"#);
    assert_snapshot!(filter(Experiments, "last_update_time <= 1"), @r#"Attribute "last_update_time" <= Num(1.0)"#);
    assert_snapshot!(filter(Experiments, "tags.x = 'a'"), @r#"Tag "x" = Str("a")"#);
    assert_snapshot!(filter(Experiments, "tag.x != 'a'"), @r#"Tag "x" != Str("a")"#);
    assert_snapshot!(filter(Experiments, "tags.x IS NULL"), @r#"Tag "x" IS NULL None"#);
    assert_snapshot!(filter(Experiments, "tags.x IS NOT NULL"), @r#"Tag "x" IS NOT NULL None"#);
}

#[test]
fn experiments_reject() {
    assert_snapshot!(filter(Experiments, "metrics.x > 1"), @"INVALID_PARAMETER_VALUE: Invalid entity type 'metrics'. Valid entity types are ('attribute', 'tag', 'tags')");
    assert_snapshot!(filter(Experiments, "`tags`.x = 'a'"), @"INVALID_PARAMETER_VALUE: Invalid entity type '`tags`'. Valid entity types are ('attribute', 'tag', 'tags')");
    assert_snapshot!(filter(Experiments, "foo = 'x'"), @"INVALID_PARAMETER_VALUE: Invalid attribute key 'foo' specified. Valid keys are '{'creation_time', 'experiment_id', 'last_update_time', 'name'}'");
    assert_snapshot!(filter(Experiments, "name IS NULL"), @"INVALID_PARAMETER_VALUE: IS NULL / IS NOT NULL is only supported for tags, not for attribute 'name'");
    assert_snapshot!(filter(Experiments, "experiment_id = 1"), @"INVALID_PARAMETER_VALUE: Expected a quoted string value for attributes. Got value 1");
    assert_snapshot!(filter(Experiments, "experiment_id = 'abc'"), @"INVALID_PARAMETER_VALUE: Invalid experiment ID 'abc'. Experiment ID must be a valid integer.");
    assert_snapshot!(filter(Experiments, "experiment_id LIKE '1'"), @"INVALID_PARAMETER_VALUE: Invalid comparator for experiment_id: LIKE");
    assert_snapshot!(filter(Experiments, "name IN ('a')"), @"INVALID_PARAMETER_VALUE: Only ['experiment_id'] attributes support comparison with a list of quoted string values.");
    assert_snapshot!(filter(Experiments, "name < 'x'"), @"INVALID_PARAMETER_VALUE: Invalid comparator for string attribute: <");
    assert_snapshot!(filter(Experiments, "creation_time > 1.5"), @"INVALID_PARAMETER_VALUE: Invalid value for numeric attribute 'creation_time': '1.5'");
    assert_snapshot!(filter(Experiments, "creation_time > '1'"), @"INVALID_PARAMETER_VALUE: Expected numeric value type for numeric attribute: creation_time. Found '1'");
    assert_snapshot!(filter(Experiments, "creation_time LIKE 1"), @"INVALID_PARAMETER_VALUE: Invalid comparator for numeric attribute: LIKE");
    assert_snapshot!(filter(Experiments, "tags.x IN ('a')"), @"INVALID_PARAMETER_VALUE: Expected a quoted string value for tag (e.g. 'my-value'). Got value ('a')");
    assert_snapshot!(filter(Experiments, "tags.x < 'a'"), @"INVALID_PARAMETER_VALUE: Invalid comparator for tag: <");
}

/// The client adds the prompt-tag clause to every registered-model search.
#[test]
fn registered_models_accept_name_and_tags() {
    assert_snapshot!(filter(RegisteredModels, "name = 'm'"), @r#"Attribute "name" = Str("m")"#);
    assert_snapshot!(filter(RegisteredModels, "name ILIKE '%a%' AND tag.`mlflow.prompt.is_prompt` != 'true'"), @r#"Attribute "name" ILIKE Str("%a%") & Tag "mlflow.prompt.is_prompt" != Str("true")"#);
    assert_snapshot!(filter(RegisteredModels, "name IN ('a', 'b')"), @r#"Attribute "name" IN List(["a", "b"])"#);
    assert_snapshot!(filter(RegisteredModels, "name NOT IN ('a')"), @r#"Attribute "name" NOT IN List(["a"])"#);
    assert_snapshot!(filter(RegisteredModels, "tags.`mlflow.prompt.is_prompt` = 'true'"), @r#"Tag "mlflow.prompt.is_prompt" = Str("true")"#);
    assert_snapshot!(filter(RegisteredModels, "attribute.name LIKE 'm%'"), @r#"Attribute "name" LIKE Str("m%")"#);
}

#[test]
fn registered_models_reject() {
    assert_snapshot!(filter(RegisteredModels, "creation_timestamp > 1"), @"INVALID_PARAMETER_VALUE: Invalid attribute key 'creation_timestamp' specified. Valid keys are '{'name'}'");
    assert_snapshot!(filter(RegisteredModels, "params.x = 'a'"), @"INVALID_PARAMETER_VALUE: Invalid entity type 'params'. Valid entity types are ('attribute', 'tag', 'tags')");
    assert_snapshot!(filter(RegisteredModels, "name = 1"), @"INVALID_PARAMETER_VALUE: Expected a quoted string value or a list of quoted string values for attributes. Got value 1");
    assert_snapshot!(filter(RegisteredModels, "name < 'x'"), @"INVALID_PARAMETER_VALUE: Invalid comparator for attribute: <");
    assert_snapshot!(filter(RegisteredModels, "tags.x IS NULL"), @"INVALID_PARAMETER_VALUE: Invalid comparator for tag: IS NULL");
    assert_snapshot!(filter(RegisteredModels, "tags.x IN ('a')"), @"INVALID_PARAMETER_VALUE: Expected a quoted string value for tag (e.g. 'my-value'). Got value ('a')");
    assert_snapshot!(filter(RegisteredModels, "tags.x LIKE 1"), @"INVALID_PARAMETER_VALUE: Expected a quoted string value for tag (e.g. 'my-value'). Got value 1");
    assert_snapshot!(filter(RegisteredModels, "name IS NULL"), @"INVALID_PARAMETER_VALUE: Invalid comparator for attribute: IS NULL");
}

#[test]
fn model_versions_accept_name_version_run_source_and_tags() {
    assert_snapshot!(filter(ModelVersions, "name = 'm'"), @r#"Attribute "name" = Str("m")"#);
    assert_snapshot!(filter(ModelVersions, "version_number = 1"), @r#"Attribute "version_number" = Num(1.0)"#);
    assert_snapshot!(filter(ModelVersions, "version_number >= '2'"), @r#"Attribute "version_number" >= Num(2.0)"#);
    assert_snapshot!(filter(ModelVersions, "run_id IN ('a')"), @r#"Attribute "run_id" IN List(["a"])"#);
    assert_snapshot!(filter(ModelVersions, "name NOT IN ('a')"), @r#"Attribute "name" NOT IN List(["a"])"#);
    assert_snapshot!(filter(ModelVersions, "source_path LIKE 's3://%'"), @r#"Attribute "source_path" LIKE Str("s3://%")"#);
    assert_snapshot!(filter(ModelVersions, "tags.x = 'a'"), @r#"Tag "x" = Str("a")"#);
    assert_snapshot!(filter(ModelVersions, "name = 'm' AND tag.`mlflow.prompt.is_prompt` != 'true'"), @r#"Attribute "name" = Str("m") & Tag "mlflow.prompt.is_prompt" != Str("true")"#);
}

#[test]
fn model_versions_reject() {
    assert_snapshot!(filter(ModelVersions, "foo = 'x'"), @"INVALID_PARAMETER_VALUE: Invalid attribute key 'foo' specified. Valid keys are '{'name', 'run_id', 'source_path', 'version_number'}'");
    assert_snapshot!(filter(ModelVersions, "version_number = 'abc'"), @"INVALID_PARAMETER_VALUE: Invalid value for numeric attribute 'version_number': 'abc'");
    assert_snapshot!(filter(ModelVersions, "version_number = 1.5"), @"INVALID_PARAMETER_VALUE: Invalid value for numeric attribute 'version_number': 1.5");
    assert_snapshot!(filter(ModelVersions, "version_number LIKE 1"), @"INVALID_PARAMETER_VALUE: Invalid comparator for attribute version_number: LIKE");
    assert_snapshot!(filter(ModelVersions, "name = 1"), @"INVALID_PARAMETER_VALUE: Only the '{'creation_timestamp', 'last_updated_timestamp', 'version_number'}' attributes support comparison with numeric values.");
    assert_snapshot!(filter(ModelVersions, "version_number IN ('1')"), @"INVALID_PARAMETER_VALUE: Only ['name', 'run_id'] attributes support comparison with a list of quoted string values.");
    assert_snapshot!(filter(ModelVersions, "source_path IN ('1')"), @"INVALID_PARAMETER_VALUE: Only ['name', 'run_id'] attributes support comparison with a list of quoted string values.");
    assert_snapshot!(filter(ModelVersions, "tags.x < 'a'"), @"INVALID_PARAMETER_VALUE: Invalid comparator for tag: <");
    assert_snapshot!(filter(ModelVersions, "tags.x IS NULL"), @"INVALID_PARAMETER_VALUE: Invalid comparator for tag: IS NULL");
    assert_snapshot!(filter(ModelVersions, "run_id IS NULL"), @"INVALID_PARAMETER_VALUE: Invalid comparator for attribute: IS NULL");
}

#[test]
fn logged_models_accept_plural_prefixes_and_attributes() {
    assert_snapshot!(filter(LoggedModels, "metrics.accuracy > 0.9"), @r#"Metric "accuracy" > Num(0.9)"#);
    assert_snapshot!(filter(LoggedModels, "params.lr = '0.01'"), @r#"Param "lr" = Str("0.01")"#);
    assert_snapshot!(filter(LoggedModels, "tags.x IN ('a', 'b')"), @r#"Tag "x" IN List(["a", "b"])"#);
    assert_snapshot!(filter(LoggedModels, "attributes.name LIKE 'm%'"), @r#"Attribute "name" LIKE Str("m%")"#);
    assert_snapshot!(filter(LoggedModels, "status = 'READY' AND model_type = 'agent'"), @r#"Attribute "status" = Str("READY") & Attribute "model_type" = Str("agent")"#);
    assert_snapshot!(filter(LoggedModels, "model_id = 'm-1'"), @r#"Attribute "model_id" = Str("m-1")"#);
    assert_snapshot!(filter(LoggedModels, "source_run_id != 'r'"), @r#"Attribute "source_run_id" != Str("r")"#);
    assert_snapshot!(filter(LoggedModels, "creation_time > 5"), @r#"Attribute "creation_timestamp" > Num(5.0)"#);
    assert_snapshot!(filter(LoggedModels, "creation_timestamp_ms > 5"), @r#"Attribute "creation_timestamp" > Num(5.0)"#);
    assert_snapshot!(filter(LoggedModels, "last_updated_timestamp < 5"), @r#"Attribute "last_updated_timestamp" < Num(5.0)"#);
    assert_snapshot!(filter(LoggedModels, "metrics.`my metric` >= 0.5"), @r#"Metric "my metric" >= Num(0.5)"#);
    assert_snapshot!(filter(LoggedModels, "name = 1"), @r#"Attribute "name" = Str("1")"#);
    assert_snapshot!(filter(LoggedModels, "name = foo"), @r#"Attribute "name" = Str("foo")"#);
}

#[test]
fn logged_models_reject() {
    assert_snapshot!(filter(LoggedModels, "metric.x > 1"), @"INVALID_PARAMETER_VALUE: Invalid entity type: 'metric'. Expected one of ['attributes', 'metrics', 'params', 'tags'].");
    assert_snapshot!(filter(LoggedModels, "Tags.x = 'a'"), @"INVALID_PARAMETER_VALUE: Invalid entity type: 'Tags'. Expected one of ['attributes', 'metrics', 'params', 'tags'].");
    assert_snapshot!(filter(LoggedModels, "foo = 'x'"), @"INVALID_PARAMETER_VALUE: Invalid attribute key 'foo' specified. Valid keys are '{'creation_time', 'creation_timestamp', 'last_updated_time', 'last_updated_timestamp', 'model_id', 'model_type', 'name', 'source_run_id', 'status'}'");
    assert_snapshot!(filter(LoggedModels, "metrics.x like 'a'"), @"INVALID_PARAMETER_VALUE: Invalid comparison operator for metrics.x: 'LIKE'. Expected one of ('<', '<=', '>', '>=', '=', '!=').");
    assert_snapshot!(filter(LoggedModels, "metrics.x > '1'"), @"INVALID_PARAMETER_VALUE: Expected a numeric value for metrics.x. Got value '1'");
    assert_snapshot!(filter(LoggedModels, "params.x IS NULL"), @"INVALID_PARAMETER_VALUE: Invalid comparison operator for params.x: 'IS NULL'. Expected one of ('=', '!=', 'LIKE', 'ILIKE', 'IN', 'NOT IN').");
    assert_snapshot!(filter(LoggedModels, "creation_timestamp LIKE 1"), @"INVALID_PARAMETER_VALUE: Invalid comparison operator for attributes.creation_timestamp: 'LIKE'. Expected one of ('<', '<=', '>', '>=', '=', '!=').");
    assert_snapshot!(filter(LoggedModels, "name < 'a'"), @"INVALID_PARAMETER_VALUE: Invalid comparison operator for attributes.name: '<'. Expected one of ('=', '!=', 'LIKE', 'ILIKE', 'IN', 'NOT IN').");
    assert_snapshot!(filter(LoggedModels, "tags.x = ('a')"), @"INVALID_PARAMETER_VALUE: Invalid comparator '=' for 'tags.x' with a list of values. A list of quoted string values is compared with IN or NOT IN.");
}

#[test]
fn runs_order_by() {
    assert_snapshot!(order_by(Runs, "metrics.rmse"), @r#"Metric "rmse" ASC"#);
    assert_snapshot!(order_by(Runs, "metrics.rmse DESC"), @r#"Metric "rmse" DESC"#);
    assert_snapshot!(order_by(Runs, "metrics.rmse desc"), @r#"Metric "rmse" DESC"#);
    assert_snapshot!(order_by(Runs, "params.lr asc"), @r#"Param "lr" ASC"#);
    assert_snapshot!(order_by(Runs, "tags.`my tag` DESC"), @r#"Tag "my tag" DESC"#);
    assert_snapshot!(order_by(Runs, "tags.mlflow.runName ASC"), @r#"Tag "mlflow.runName" ASC"#);
    assert_snapshot!(order_by(Runs, "start_time"), @r#"Attribute "start_time" ASC"#);
    assert_snapshot!(order_by(Runs, "created DESC"), @r#"Attribute "start_time" DESC"#);
    assert_snapshot!(order_by(Runs, "attribute.run_name"), @r#"Attribute "run_name" ASC"#);
    assert_snapshot!(order_by(Runs, r#"params."x y" DESC"#), @r#"Param "x y" DESC"#);
    assert_snapshot!(order_by(Runs, "Run Name"), @"INVALID_PARAMETER_VALUE: Invalid ordering key in order_by clause 'Run Name'.");
    assert_snapshot!(order_by(Runs, "`Run Name`"), @"INVALID_PARAMETER_VALUE: Invalid attribute key 'Run Name' specified. Valid keys are '{'Created', 'artifact_uri', 'created', 'end_time', 'run_id', 'run_name', 'start_time', 'status', 'user_id'}'");
    assert_snapshot!(order_by(Runs, "metrics.a DESC ASC"), @"INVALID_PARAMETER_VALUE: Invalid order_by clause 'metrics.a DESC ASC'. Could not be parsed.");
    assert_snapshot!(order_by(Runs, "metrics.a up"), @"INVALID_PARAMETER_VALUE: Invalid ordering key in order_by clause 'metrics.a up'.");
    assert_snapshot!(order_by(Runs, "foo"), @"INVALID_PARAMETER_VALUE: Invalid attribute key 'foo' specified. Valid keys are '{'Created', 'artifact_uri', 'created', 'end_time', 'run_id', 'run_name', 'start_time', 'status', 'user_id'}'");
    assert_snapshot!(order_by(Runs, ""), @"INVALID_PARAMETER_VALUE: Invalid order_by clause ''. Could not be parsed.");
    assert_snapshot!(order_by(Runs, "metrics.a, metrics.b"), @"INVALID_PARAMETER_VALUE: Invalid order_by clause 'metrics.a, metrics.b'. Could not be parsed.");
    assert_snapshot!(order_by(Runs, "dataset.name"), @"INVALID_PARAMETER_VALUE: Invalid identifier type 'dataset'");
}

#[test]
fn experiments_order_by() {
    assert_snapshot!(order_by(Experiments, "name"), @r#"Attribute "name" ASC"#);
    assert_snapshot!(order_by(Experiments, "creation_time DESC"), @r#"Attribute "creation_time" DESC"#);
    assert_snapshot!(order_by(Experiments, "experiment_id ASC"), @r#"Attribute "experiment_id" ASC"#);
    assert_snapshot!(order_by(Experiments, "last_update_time desc"), @r#"Attribute "last_update_time" DESC"#);
    assert_snapshot!(order_by(Experiments, "tags.x"), @"INVALID_PARAMETER_VALUE: Invalid order_by entity: tag");
    assert_snapshot!(order_by(Experiments, "foo"), @"INVALID_PARAMETER_VALUE: Invalid attribute key 'foo' specified. Valid keys are '{'creation_time', 'experiment_id', 'last_update_time', 'name'}'");
}

#[test]
fn registered_models_order_by() {
    assert_snapshot!(order_by(RegisteredModels, "name"), @r#"Attribute "name" ASC"#);
    assert_snapshot!(order_by(RegisteredModels, "name DESC"), @r#"Attribute "name" DESC"#);
    assert_snapshot!(order_by(RegisteredModels, "timestamp DESC"), @r#"Attribute "last_updated_timestamp" DESC"#);
    assert_snapshot!(order_by(RegisteredModels, "last_updated_timestamp"), @r#"Attribute "last_updated_timestamp" ASC"#);
    assert_snapshot!(order_by(RegisteredModels, "creation_timestamp"), @"INVALID_PARAMETER_VALUE: Invalid order by key 'creation_timestamp' specified. Valid keys are '{'name', 'timestamp'}'");
    assert_snapshot!(order_by(RegisteredModels, "tags.x"), @"INVALID_PARAMETER_VALUE: Invalid order by key 'tags.x' specified. Valid keys are '{'name', 'timestamp'}'");
}

#[test]
fn model_versions_order_by() {
    assert_snapshot!(order_by(ModelVersions, "name ASC"), @r#"Attribute "name" ASC"#);
    assert_snapshot!(order_by(ModelVersions, "version_number DESC"), @r#"Attribute "version_number" DESC"#);
    assert_snapshot!(order_by(ModelVersions, "creation_timestamp"), @r#"Attribute "creation_timestamp" ASC"#);
    assert_snapshot!(order_by(ModelVersions, "last_updated_timestamp DESC"), @r#"Attribute "last_updated_timestamp" DESC"#);
    assert_snapshot!(order_by(ModelVersions, "tags.x"), @"INVALID_PARAMETER_VALUE: Invalid order by key 'x' specified. Valid keys are {'creation_timestamp', 'last_updated_timestamp', 'name', 'version_number'}");
    assert_snapshot!(order_by(ModelVersions, "run_id"), @"INVALID_PARAMETER_VALUE: Invalid attribute key 'run_id' specified. Valid keys are '{'creation_timestamp', 'last_updated_timestamp', 'name', 'version_number'}'");
}

/// The REST field_name, optionally followed by a direction.
#[test]
fn logged_models_order_by() {
    assert_snapshot!(order_by(LoggedModels, "metrics.accuracy"), @r#"Metric "accuracy" ASC"#);
    assert_snapshot!(order_by(LoggedModels, "metrics.my metric DESC"), @r#"Metric "my metric" DESC"#);
    assert_snapshot!(order_by(LoggedModels, "creation_time"), @r#"Attribute "creation_timestamp" ASC"#);
    assert_snapshot!(order_by(LoggedModels, "last_updated_timestamp DESC"), @r#"Attribute "last_updated_timestamp" DESC"#);
    assert_snapshot!(order_by(LoggedModels, "name"), @r#"Attribute "name" ASC"#);
    assert_snapshot!(order_by(LoggedModels, "params.lr"), @"INVALID_PARAMETER_VALUE: Invalid order by field name: params.lr. Only metrics are supported.");
    assert_snapshot!(order_by(LoggedModels, "foo"), @"INVALID_PARAMETER_VALUE: Invalid order by field name: foo.");
}

/// Rendering picks the spelling that reads back: plural prefixes, quotes only where needed.
#[test]
fn filters_render_as_filter_strings() {
    let render = |entity, input| match parse_filter(entity, input) {
        Ok(filter) => filter.to_filter_string(),
        Err(error) => format!("{}: {}", error.code, error.message),
    };
    assert_snapshot!(
        render(Runs, "metric.rmse<1 and tag.`my key`='a' and `Run Name` like 'x%' and created >= 5"),
        @"metrics.rmse < 1 AND tags.`my key` = 'a' AND run_name LIKE 'x%' AND start_time >= 5"
    );
    assert_snapshot!(
        render(Runs, r#"tags.x = "it's" AND run_id IN ("a", 'b\'c') AND params.p IS NOT NULL"#),
        @r#"tags.x = "it's" AND run_id IN ('a', 'b\'c') AND params.p IS NOT NULL"#
    );
    assert_snapshot!(
        render(Runs, "tags.mlflow.runName = 'x' AND datasets.digest NOT IN ('d') AND metrics.m > 1e999"),
        @"tags.mlflow.runName = 'x' AND datasets.digest NOT IN ('d') AND metrics.m > 1e999"
    );
    assert_snapshot!(render(ModelVersions, "version_number = '3'"), @"version_number = 3");
    assert_snapshot!(render(Runs, ""), @"");
}

#[test]
fn order_by_renders_with_its_direction() {
    let order = parse_order_by(Runs, "`Created`").unwrap_or_else(|error| panic!("{error}"));
    assert_snapshot!(order.to_string(), @"start_time ASC");
    let order = parse_order_by(Runs, "tags.`a b` desc").unwrap_or_else(|error| panic!("{error}"));
    assert_snapshot!(order.to_string(), @"tags.`a b` DESC");
}

#[test]
fn traces_read_attributes_tags_and_metadata_where_mlflow_keeps_them() {
    let cases = [
        "trace.name = 'chat'",
        "name = 'chat'",
        "tags.Name LIKE 'ch%'",
        "trace.status = 'ERROR'",
        "status IN ('OK', 'ERROR')",
        "attributes.status != 'OK'",
        "trace.timestamp_ms > 1700000000000",
        "timestamp <= 5",
        "trace.execution_time_ms >= 2.5",
        "execution_time < '100'",
        "end_time > 10",
        "trace.request_id = 'tr-1'",
        "request_id NOT IN ('tr-1', 'tr-2')",
        "client_request_id = 'c'",
        "tags.team = 'a'",
        "tag.`my key` ILIKE '%x%'",
        "tags.team IS NULL",
        "metadata.`mlflow.sourceRun` = 'r1'",
        "request_metadata.user IS NOT NULL",
        "run_id = 'r1'",
        "trace.run_id = 'r1'",
        "span.name = 'retrieve'",
        "span.type IN ('LLM', 'TOOL')",
        "span.attributes.model LIKE '%gpt%'",
        "text ILIKE '%hello%'",
        "feedback.quality = 'good'",
        "feedback.score >= 0.5",
        "expectation.answer IS NULL",
        "issue.id = 'iss-1'",
        "prompt = 'greet/1'",
        "trace.name = 'a' AND tags.team = 'b' AND timestamp_ms > 3",
    ];
    let shown: Vec<String> = cases
        .iter()
        .map(|case| format!("{case}  =>  {}", filter(Traces, case)))
        .collect();
    assert_snapshot!(shown.join("\n"));
}

#[test]
fn traces_reject_what_mlflow_rejects() {
    let cases = [
        "trace.state = 'OK'",
        "foo.x = 'a'",
        "name IN ('a')",
        "run_id IN ('a')",
        "timestamp_ms LIKE 'x'",
        "timestamp_ms > 'abc'",
        "status = 5",
        "tags.x = 5",
        "tags.x = bare",
        "metadata.x > 'a'",
        "metadata.x = 1",
        "trace.status RLIKE 'O'",
        "span.kind = 'x'",
        "span.attributes. = 'x'",
        "span.content = 'x'",
        "feedback.score > 'a'",
        "feedback.score = 1",
        "issue.name = 'x'",
        "issue.id != 'x'",
        "experiment_id = '1'",
        "status = ('OK')",
        "trace.name = 'a' OR trace.name = 'b'",
    ];
    let shown: Vec<String> = cases
        .iter()
        .map(|case| format!("{case}  =>  {}", filter(Traces, case)))
        .collect();
    assert_snapshot!(shown.join("\n"));
}

#[test]
fn traces_order_by_attributes_tags_and_metadata() {
    let cases = [
        "timestamp_ms DESC",
        "timestamp",
        "execution_time ASC",
        "trace.status",
        "name DESC",
        "run_id",
        "request_id",
        "experiment_id",
        "tags.team DESC",
        "metadata.`mlflow.user`",
        "span.name",
        "client_request_id",
        "timestamp_ms sideways",
    ];
    let shown: Vec<String> = cases
        .iter()
        .map(|case| format!("{case}  =>  {}", order_by(Traces, case)))
        .collect();
    assert_snapshot!(shown.join("\n"));
}

/// Evaluation datasets know five attributes and `tags.`; MLflow hands text comparators it does
/// not list (`>`) to the database, and lists go with `name IN` only.
#[test]
fn evaluation_datasets_accept_attributes_and_tags_with_mlflows_checks() {
    assert_snapshot!(filter(EvaluationDatasets, "name = 'ds' AND tags.team = 'ml'"), @r#"Attribute "name" = Str("ds") & Tag "team" = Str("ml")"#);
    assert_snapshot!(filter(EvaluationDatasets, "name IN ('a', 'b')"), @r#"Attribute "name" IN List(["a", "b"])"#);
    assert_snapshot!(filter(EvaluationDatasets, "created_time > 5 AND last_update_time <= 10"), @r#"Attribute "created_time" > Num(5.0) & Attribute "last_update_time" <= Num(10.0)"#);
    assert_snapshot!(filter(EvaluationDatasets, "created_by LIKE 'a%'"), @r#"Attribute "created_by" LIKE Str("a%")"#);
    assert_snapshot!(filter(EvaluationDatasets, "name > 'a'"), @r#"Attribute "name" > Str("a")"#);
    assert_snapshot!(filter(EvaluationDatasets, "tags.`my key` ILIKE '%x%'"), @r#"Tag "my key" ILIKE Str("%x%")"#);
    assert_snapshot!(filter(EvaluationDatasets, "foo = 'x'"), @r#"INVALID_PARAMETER_VALUE: Invalid attribute key 'foo' specified. Valid keys are: {'name', 'created_time', 'last_update_time', 'created_by', 'last_updated_by'}"#);
    assert_snapshot!(filter(EvaluationDatasets, "params.x = 'x'"), @r#"INVALID_PARAMETER_VALUE: Invalid identifier token 'params' specified"#);
    assert_snapshot!(filter(EvaluationDatasets, "attributes.name = 'x'"), @r#"INVALID_PARAMETER_VALUE: Invalid identifier token 'attributes' specified"#);
    assert_snapshot!(filter(EvaluationDatasets, "tags.a < 'x'"), @r#"INVALID_PARAMETER_VALUE: Invalid comparator for tag: <"#);
    assert_snapshot!(filter(EvaluationDatasets, "tags.a IS NULL"), @r#"INVALID_PARAMETER_VALUE: Invalid comparator for tag: IS NULL"#);
    assert_snapshot!(filter(EvaluationDatasets, "name IS NULL"), @r#"INVALID_PARAMETER_VALUE: IS NULL / IS NOT NULL is only supported for tags and params, not for 'attribute' 'name'"#);
    assert_snapshot!(filter(EvaluationDatasets, "created_time > 'abc'"), @r#"INVALID_PARAMETER_VALUE: Expected numeric value type for numeric attribute: created_time. Found 'abc'"#);
    assert_snapshot!(filter(EvaluationDatasets, "created_time > 1.5"), @r#"INVALID_PARAMETER_VALUE: Invalid value for numeric attribute 'created_time': '1.5'"#);
    assert_snapshot!(filter(EvaluationDatasets, "created_time LIKE 5"), @r#"INVALID_PARAMETER_VALUE: Invalid comparator for numeric attribute: LIKE"#);
    assert_snapshot!(filter(EvaluationDatasets, "created_by IN ('a')"), @r#"INVALID_PARAMETER_VALUE: Only ['name'] attributes support comparison with a list of quoted string values."#);
    assert_snapshot!(filter(EvaluationDatasets, "name NOT IN ('a')"), @r#"INVALID_PARAMETER_VALUE: List values for 'name' are only supported with the IN comparator."#);
    assert_snapshot!(filter(EvaluationDatasets, "name = ('a', 'b')"), @r#"INVALID_PARAMETER_VALUE: List values for 'name' are only supported with the IN comparator."#);
    assert_snapshot!(filter(EvaluationDatasets, "tags.a = 5"), @r#"INVALID_PARAMETER_VALUE: Expected a quoted string value for tag (e.g. 'my-value'). Got value 5"#);
    assert_snapshot!(filter(EvaluationDatasets, "name = x"), @r#"INVALID_PARAMETER_VALUE: Parameter value is either not quoted or unidentified quote types used for string value x. Use either single or double quotes."#);
}

#[test]
fn evaluation_datasets_order_by_name_or_times_only() {
    assert_snapshot!(order_by(EvaluationDatasets, "name ASC"), @r#"Attribute "name" ASC"#);
    assert_snapshot!(order_by(EvaluationDatasets, "created_time DESC"), @r#"Attribute "created_time" DESC"#);
    assert_snapshot!(order_by(EvaluationDatasets, "last_update_time"), @r#"Attribute "last_update_time" ASC"#);
    assert_snapshot!(order_by(EvaluationDatasets, "digest DESC"), @r#"INVALID_PARAMETER_VALUE: Invalid attribute key 'digest' specified. Valid keys are: {'name', 'created_time', 'last_update_time'}"#);
    assert_snapshot!(order_by(EvaluationDatasets, "tags.a DESC"), @r#"INVALID_PARAMETER_VALUE: Invalid order_by entity: tag"#);
    assert_snapshot!(order_by(EvaluationDatasets, "created_by"), @r#"INVALID_PARAMETER_VALUE: Invalid attribute key 'created_by' specified. Valid keys are: {'name', 'created_time', 'last_update_time'}"#);
}

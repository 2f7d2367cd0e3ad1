//! The search space of `pismo tune`: which settings of `pismo train` vary, and over what.
//!
//! A space is a list of [`Dimension`]s, each a setting's name and its [`Domain`]. Values are
//! `f64` everywhere (a switch is 0 or 1, a size is a whole number); [`Space::apply`] turns
//! them into a [`Hyper`] and a [`Recipe`], so a point of the space is a run of `pismo train`.
//! The number of epochs is not a dimension: it is the budget successive halving hands out
//! ([`crate::asha`]).
//!
//! A space file is a JSON object from setting name to domain:
//!
//! ```json
//! { "initial_lr":   { "log": [0.003, 0.3] },
//!   "dropout_rate": { "uniform": [0.0, 0.6] },
//!   "average":      { "int": [0, 10] },
//!   "hidden_size":  { "choice": [128, 256, 512] },
//!   "deskew":       { "choice": [false, true] } }
//! ```
//!
//! `log` and `int_log` domains are searched on the logarithm's scale (learning rates,
//! penalties), `uniform` and `int` on the value's.

use std::collections::BTreeMap;

use serde_json::Value;

use pismo_core::hyper::{Hyper, HIDDEN_SIZES};
use pismo_training::recipe::Recipe;

/// How one setting varies.
#[derive(Clone, Debug, PartialEq)]
pub enum Domain {
    /// A real number in `[low, high]`, uniform.
    Uniform {
        /// Smallest value.
        low: f64,
        /// Largest value.
        high: f64,
    },
    /// A positive real number in `[low, high]`, uniform in its logarithm.
    Log {
        /// Smallest value (> 0).
        low: f64,
        /// Largest value.
        high: f64,
    },
    /// A whole number in `[low, high]`, uniform (or uniform in its logarithm with `log`).
    Int {
        /// Smallest value.
        low: i64,
        /// Largest value.
        high: i64,
        /// Searched on the logarithm's scale (then `low` ≥ 1).
        log: bool,
    },
    /// One of a list of values (switches are `[0, 1]`).
    Choice(Vec<f64>),
}

impl Domain {
    /// The bounds of the search coordinate (the logarithm for log domains, the index for a
    /// choice: `[0, len − 1]`).
    pub fn bounds(&self) -> (f64, f64) {
        match self {
            Domain::Uniform { low, high } => (*low, *high),
            Domain::Log { low, high } => (low.ln(), high.ln()),
            Domain::Int {
                low,
                high,
                log: false,
            } => (*low as f64 - 0.5, *high as f64 + 0.5),
            Domain::Int {
                low,
                high,
                log: true,
            } => ((*low as f64 - 0.5).max(0.5).ln(), (*high as f64 + 0.5).ln()),
            Domain::Choice(options) => (0.0, options.len() as f64 - 1.0),
        }
    }

    /// Whether the coordinate is an index into a list of options.
    pub fn is_choice(&self) -> bool {
        matches!(self, Domain::Choice(_))
    }

    /// The value a search coordinate stands for.
    pub fn value(&self, coordinate: f64) -> f64 {
        let (lo, hi) = self.bounds();
        let c = coordinate.clamp(lo, hi);
        match self {
            Domain::Uniform { .. } => c,
            Domain::Log { low, high } => c.exp().clamp(*low, *high),
            Domain::Int { low, high, log } => {
                let v = if *log { c.exp() } else { c };
                (v.round() as i64).clamp(*low, *high) as f64
            }
            Domain::Choice(options) => options[(c.round() as usize).min(options.len() - 1)],
        }
    }

    /// Whether `value` is one of the domain's values.
    pub fn contains(&self, value: f64) -> bool {
        match self {
            Domain::Uniform { low, high } | Domain::Log { low, high } => {
                (*low..=*high).contains(&value)
            }
            Domain::Int { low, high, .. } => {
                value.fract() == 0.0 && (*low as f64..=*high as f64).contains(&value)
            }
            Domain::Choice(options) => options.contains(&value),
        }
    }

    /// The search coordinate of a value (for trials read back from a journal).
    pub fn coordinate(&self, value: f64) -> f64 {
        match self {
            Domain::Uniform { .. } => value,
            Domain::Log { .. } | Domain::Int { log: true, .. } => value.ln(),
            Domain::Int { log: false, .. } => value,
            Domain::Choice(options) => options.iter().position(|&o| o == value).unwrap_or(0) as f64,
        }
    }
}

/// One setting of the space.
#[derive(Clone, Debug, PartialEq)]
pub struct Dimension {
    /// The setting's name, as in `pismo train`'s flags with underscores.
    pub name: String,
    /// Its values.
    pub domain: Domain,
}

impl Dimension {
    /// The setting `name` over `domain`.
    pub fn new(name: &str, domain: Domain) -> Dimension {
        Dimension {
            name: name.to_owned(),
            domain,
        }
    }
}

/// A search space.
#[derive(Clone, Debug, PartialEq)]
pub struct Space {
    /// Its settings, in a fixed order (a point is one value per dimension, in this order).
    pub dims: Vec<Dimension>,
}

/// A space file or a point that cannot be used.
#[derive(Clone, Debug, PartialEq)]
pub struct SpaceError(pub String);

impl std::fmt::Display for SpaceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SpaceError {}

/// A setting a space may vary: the range it accepts, and where it lives in a run's settings.
struct Setting {
    name: &'static str,
    min: f64,
    max: f64,
    get: fn(&Hyper, &Recipe) -> f64,
    set: fn(&mut Hyper, &mut Recipe, f64),
}

/// `true` as 1.0, `false` as 0.0, as a switch's choice holds it.
fn switch(on: bool) -> f64 {
    f64::from(u8::from(on))
}

/// The settings a space may vary.
const SETTINGS: &[Setting] = &[
    Setting {
        name: "hidden_size",
        min: 16.0,
        max: 4096.0,
        get: |h, _| f64::from(h.hidden_size),
        set: |h, _, v| h.hidden_size = v as u32,
    },
    Setting {
        name: "dropout_rate",
        min: 0.0,
        max: 0.95,
        get: |h, _| f64::from(h.dropout_rate),
        set: |h, _, v| h.dropout_rate = v as f32,
    },
    Setting {
        name: "reg_lambda",
        min: 0.0,
        max: 100.0,
        get: |h, _| f64::from(h.reg_lambda),
        set: |h, _, v| h.reg_lambda = v as f32,
    },
    Setting {
        name: "initial_lr",
        min: 1e-6,
        max: 10.0,
        get: |h, _| f64::from(h.initial_lr),
        set: |h, _, v| h.initial_lr = v as f32,
    },
    Setting {
        name: "decay",
        min: 0.0,
        max: 100.0,
        get: |h, _| f64::from(h.decay),
        set: |h, _, v| h.decay = v as f32,
    },
    Setting {
        name: "momentum",
        min: 0.0,
        max: 0.999,
        get: |h, _| f64::from(h.momentum),
        set: |h, _, v| h.momentum = v as f32,
    },
    Setting {
        name: "batch_size",
        min: 1.0,
        max: 4096.0,
        get: |h, _| f64::from(h.batch_size),
        set: |h, _, v| h.batch_size = v as u32,
    },
    Setting {
        name: "augment",
        min: 0.0,
        max: 1.0,
        get: |h, _| switch(h.augment),
        set: |h, _, v| h.augment = v != 0.0,
    },
    Setting {
        name: "elastic",
        min: 0.0,
        max: 8.0,
        get: |_, r| f64::from(r.elastic),
        set: |_, r, v| r.elastic = v as f32,
    },
    Setting {
        name: "shift",
        min: 0.0,
        max: 8.0,
        get: |_, r| f64::from(r.shift),
        set: |_, r, v| r.shift = v as f32,
    },
    Setting {
        name: "deskew",
        min: 0.0,
        max: 1.0,
        get: |_, r| switch(r.deskew),
        set: |_, r, v| r.deskew = v != 0.0,
    },
    Setting {
        name: "average",
        min: 0.0,
        max: 1000.0,
        get: |_, r| f64::from(r.average),
        set: |_, r, v| r.average = v as u32,
    },
];

/// The setting called `name`, or an error listing the ones there are.
fn setting(name: &str) -> Result<&'static Setting, SpaceError> {
    SETTINGS.iter().find(|s| s.name == name).ok_or_else(|| {
        SpaceError(format!(
            "`{name}` is not a setting a space can vary (have: {})",
            setting_names()
        ))
    })
}

fn setting_names() -> String {
    SETTINGS
        .iter()
        .map(|s| s.name)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Space {
    /// The default space: every setting of `pismo train` but the epochs (the budget), the
    /// seed and the data, over ranges that hold the good runs measured so far.
    pub fn default_space() -> Space {
        let dim = Dimension::new;
        Space {
            dims: vec![
                dim(
                    "hidden_size",
                    Domain::Choice(vec![64.0, 128.0, 256.0, 512.0, 1024.0]),
                ),
                dim(
                    "dropout_rate",
                    Domain::Uniform {
                        low: 0.0,
                        high: 0.6,
                    },
                ),
                dim(
                    "reg_lambda",
                    Domain::Log {
                        low: 1e-4,
                        high: 1.0,
                    },
                ),
                dim(
                    "initial_lr",
                    Domain::Log {
                        low: 0.003,
                        high: 0.3,
                    },
                ),
                dim(
                    "decay",
                    Domain::Log {
                        low: 0.001,
                        high: 0.5,
                    },
                ),
                dim(
                    "momentum",
                    Domain::Uniform {
                        low: 0.5,
                        high: 0.98,
                    },
                ),
                dim(
                    "batch_size",
                    Domain::Choice(vec![16.0, 32.0, 64.0, 128.0, 256.0]),
                ),
                dim("augment", Domain::Choice(vec![0.0, 1.0])),
                dim(
                    "elastic",
                    Domain::Uniform {
                        low: 0.0,
                        high: 3.0,
                    },
                ),
                dim(
                    "shift",
                    Domain::Uniform {
                        low: 0.0,
                        high: 2.0,
                    },
                ),
                dim("deskew", Domain::Choice(vec![0.0, 1.0])),
                dim(
                    "average",
                    Domain::Int {
                        low: 0,
                        high: 10,
                        log: false,
                    },
                ),
            ],
        }
    }

    /// Reads a space file's text (see the module docs); every error names the setting.
    pub fn from_json(text: &str) -> Result<Space, SpaceError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| SpaceError(format!("the space file is not valid JSON: {e}")))?;
        let Value::Object(map) = value else {
            return Err(SpaceError(
                "the space file must be a JSON object from setting name to domain".to_owned(),
            ));
        };
        if map.is_empty() {
            return Err(SpaceError("the space file names no setting".to_owned()));
        }
        let mut dims = Vec::new();
        for (name, spec) in map {
            let domain = parse_domain(&name, &spec)?;
            let dim = Dimension { name, domain };
            check_range(&dim)?;
            dims.push(dim);
        }
        Ok(Space { dims })
    }

    /// The space as a space file holds it (for a study's journal).
    pub fn to_json(&self) -> Value {
        let num = |x: f64| serde_json::json!(x);
        let map = self
            .dims
            .iter()
            .map(|d| {
                let spec = match &d.domain {
                    Domain::Uniform { low, high } => {
                        serde_json::json!({"uniform": [num(*low), num(*high)]})
                    }
                    Domain::Log { low, high } => {
                        serde_json::json!({"log": [num(*low), num(*high)]})
                    }
                    Domain::Int { low, high, log } => {
                        let kind = if *log { "int_log" } else { "int" };
                        serde_json::json!({ kind: [low, high] })
                    }
                    Domain::Choice(options) => serde_json::json!({"choice": options}),
                };
                (d.name.clone(), spec)
            })
            .collect();
        Value::Object(map)
    }

    /// A point's values by setting name.
    pub fn values(&self, point: &[f64]) -> BTreeMap<String, f64> {
        self.dims
            .iter()
            .zip(point)
            .map(|(d, &c)| (d.name.clone(), d.domain.value(c)))
            .collect()
    }

    /// The values `base` and `recipe` give the space's settings, if every one lies in its
    /// domain: the point a study tries first, so that it starts from the run `pismo train`
    /// would make with the same settings (as hyperopt's `points_to_evaluate`
    /// and Optuna's `enqueue_trial` let a user do by hand).
    pub fn start(&self, base: &Hyper, recipe: &Recipe) -> Option<BTreeMap<String, f64>> {
        self.dims
            .iter()
            .map(|d| {
                let value = (setting(&d.name).ok()?.get)(base, recipe);
                d.domain.contains(value).then(|| (d.name.clone(), value))
            })
            .collect()
    }

    /// `base` and `recipe` with the settings a point gives; the result is checked as
    /// `pismo train` checks its flags.
    pub fn apply(
        &self,
        values: &BTreeMap<String, f64>,
        base: &Hyper,
        recipe: &Recipe,
    ) -> Result<(Hyper, Recipe), SpaceError> {
        let (mut hyper, mut recipe) = (*base, recipe.clone());
        for (name, &v) in values {
            (setting(name)?.set)(&mut hyper, &mut recipe, v);
        }
        hyper
            .validate()
            .map_err(|e| SpaceError(format!("a point of the space is not a valid run: {e}")))?;
        recipe
            .validate()
            .map_err(|e| SpaceError(format!("a point of the space is not a valid run: {e}")))?;
        Ok((hyper, recipe))
    }
}

fn parse_domain(name: &str, spec: &Value) -> Result<Domain, SpaceError> {
    let bad = |why: &str| SpaceError(format!("setting `{name}`: {why}"));
    let Value::Object(map) = spec else {
        return Err(bad(
            "expected an object such as {\"uniform\": [0, 1]}, {\"log\": [0.001, 0.1]}, \
             {\"int\": [1, 10]}, {\"int_log\": [16, 1024]} or {\"choice\": [64, 128]}",
        ));
    };
    if map.len() != 1 {
        return Err(bad(
            "expected exactly one of uniform, log, int, int_log, choice",
        ));
    }
    let (kind, arg) = map.iter().next().expect("one entry");
    let number = |v: &Value| -> Result<f64, SpaceError> {
        match v {
            Value::Number(n) => n
                .as_f64()
                .filter(|x| x.is_finite())
                .ok_or_else(|| bad("numbers must be finite")),
            Value::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
            _ => Err(bad("values must be numbers (or true/false in a choice)")),
        }
    };
    let pair = || -> Result<(f64, f64), SpaceError> {
        match arg {
            Value::Array(items) if items.len() == 2 => {
                let (low, high) = (number(&items[0])?, number(&items[1])?);
                if low < high {
                    Ok((low, high))
                } else {
                    Err(bad("expected [low, high] with low < high"))
                }
            }
            _ => Err(bad("expected [low, high]")),
        }
    };
    let whole = |x: f64| -> Result<i64, SpaceError> {
        if x.fract() == 0.0 {
            Ok(x as i64)
        } else {
            Err(bad("int bounds must be whole numbers"))
        }
    };
    match kind.as_str() {
        "uniform" => pair().map(|(low, high)| Domain::Uniform { low, high }),
        "log" => {
            let (low, high) = pair()?;
            if low <= 0.0 {
                return Err(bad("a log domain needs low > 0"));
            }
            Ok(Domain::Log { low, high })
        }
        "int" | "int_log" => {
            let (low, high) = pair()?;
            let (low, high) = (whole(low)?, whole(high)?);
            let log = kind == "int_log";
            if log && low < 1 {
                return Err(bad("an int_log domain needs low >= 1"));
            }
            Ok(Domain::Int { low, high, log })
        }
        "choice" => match arg {
            Value::Array(items) if !items.is_empty() => {
                let options = items.iter().map(number).collect::<Result<Vec<_>, _>>()?;
                Ok(Domain::Choice(options))
            }
            _ => Err(bad("a choice needs a non-empty list of values")),
        },
        other => Err(bad(&format!(
            "unknown domain `{other}` (have: uniform, log, int, int_log, choice)"
        ))),
    }
}

/// Every value the domain can give must be accepted by the setting.
fn check_range(dim: &Dimension) -> Result<(), SpaceError> {
    let &Setting { min, max, .. } = setting(&dim.name)?;
    let values: Vec<f64> = match &dim.domain {
        Domain::Uniform { low, high } | Domain::Log { low, high } => vec![*low, *high],
        Domain::Int { low, high, .. } => vec![*low as f64, *high as f64],
        Domain::Choice(options) => options.clone(),
    };
    if let Some(v) = values.iter().find(|&&v| v < min || v > max) {
        return Err(SpaceError(format!(
            "setting `{}`: {v} is outside its range {min}..={max}",
            dim.name
        )));
    }
    if dim.name == "hidden_size" {
        let sizes = match &dim.domain {
            Domain::Choice(options) => options.clone(),
            _ => vec![-1.0],
        };
        if sizes
            .iter()
            .any(|&s| !HIDDEN_SIZES.contains(&(s as u32)) || s.fract() != 0.0)
        {
            return Err(SpaceError(format!(
                "setting `hidden_size` must be a choice among {HIDDEN_SIZES:?}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_space_gives_valid_runs_at_its_corners() {
        let space = Space::default_space();
        for corner in [0.0, 1.0] {
            let point: Vec<f64> = space
                .dims
                .iter()
                .map(|d| {
                    let (lo, hi) = d.domain.bounds();
                    lo + corner * (hi - lo)
                })
                .collect();
            let values = space.values(&point);
            space
                .apply(&values, &Hyper::DEFAULT, &Recipe::default())
                .unwrap();
        }
    }

    #[test]
    fn a_study_starts_from_its_own_settings_when_the_space_holds_them() {
        let space = Space::default_space();
        let (base, recipe) = (Hyper::DEFAULT, Recipe::default());
        let start = space
            .start(&base, &recipe)
            .expect("the defaults lie in the default space");
        assert_eq!(start.len(), space.dims.len());
        assert_eq!(start["hidden_size"], 128.0);
        assert_eq!(start["augment"], 0.0);
        assert_eq!(
            space.apply(&start, &base, &recipe),
            Ok((base, recipe.clone()))
        );
        // Another base (settings of the study) moves its start.
        let wide = Hyper {
            hidden_size: 512,
            ..base
        };
        assert_eq!(space.start(&wide, &recipe).unwrap()["hidden_size"], 512.0);
        // A setting outside its domain: no start point, TPE's first point instead.
        let narrow = Hyper {
            hidden_size: 2048,
            ..base
        };
        assert_eq!(space.start(&narrow, &recipe), None);
        let lr = Hyper {
            initial_lr: 0.5,
            ..base
        };
        assert_eq!(space.start(&lr, &recipe), None);
    }

    #[test]
    fn log_domains_round_trip_through_their_coordinate() {
        let d = Domain::Log {
            low: 0.001,
            high: 0.1,
        };
        let c = d.coordinate(0.01);
        assert!((d.value(c) - 0.01).abs() < 1e-12);
        let i = Domain::Int {
            low: 16,
            high: 1024,
            log: true,
        };
        assert_eq!(i.value(i.coordinate(256.0)), 256.0);
        let ch = Domain::Choice(vec![64.0, 128.0]);
        assert_eq!(ch.value(ch.coordinate(128.0)), 128.0);
    }

    #[test]
    fn a_space_file_is_read_and_bad_ones_are_named() {
        let s = Space::from_json(
            r#"{"initial_lr": {"log": [0.003, 0.3]}, "deskew": {"choice": [false, true]}}"#,
        )
        .unwrap();
        assert_eq!(s.dims.len(), 2);
        let default = Space::default_space();
        let again = Space::from_json(&default.to_json().to_string()).unwrap();
        // A JSON object's keys come back sorted; the dimensions are the same.
        assert_eq!(again.dims.len(), default.dims.len());
        for d in &default.dims {
            assert!(again.dims.contains(d), "{d:?}");
        }
        for (text, needle) in [
            ("[1, 2]", "JSON object"),
            ("{}", "names no setting"),
            (
                r#"{"learning": {"uniform": [0, 1]}}"#,
                "`learning` is not a setting",
            ),
            (r#"{"initial_lr": {"log": [0, 1]}}"#, "low > 0"),
            (r#"{"dropout_rate": {"uniform": [0.5, 0.1]}}"#, "low < high"),
            (r#"{"dropout_rate": {"normal": [0, 1]}}"#, "unknown domain"),
            (r#"{"hidden_size": {"choice": [100]}}"#, "hidden_size"),
            (r#"{"momentum": {"uniform": [0, 2]}}"#, "outside its range"),
            (r#"{"average": {"int": [0, 2.5]}}"#, "whole numbers"),
            ("{", "not valid JSON"),
        ] {
            let err = Space::from_json(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}

//! Raw values the stack file may write in more than one shape: `env_file`
//! (a path, or a list of paths and `{ path, required }` items) and
//! `when_to_run` (`always`, `once`, or a schedule).

use std::borrow::Cow;
use std::fmt;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::de::Spanned;
use super::raw::{HumanDuration, WhenToRun};

/// `env_file`: the files to read, in order.
#[derive(Debug, Clone, Default)]
pub struct EnvFiles(pub Vec<EnvFileRef>);

/// One file of `env_file`.
#[derive(Debug, Clone)]
pub struct EnvFileRef {
    /// As written: relative to the folder of the stack file that names it.
    pub path: Spanned<String>,
    /// Whether a missing file is an error (the default) or skipped.
    pub required: bool,
}

/// The long form of an `env_file` item.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvFileItem {
    path: Spanned<String>,
    required: Option<bool>,
}

impl<'de> Deserialize<'de> for EnvFiles {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// A path, or a list of items.
        enum Shape {
            One(String),
            Many(Vec<EnvFileRef>),
        }
        struct Whole;
        impl<'de> Visitor<'de> for Whole {
            type Value = Shape;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a path or a list of paths")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Shape, E> {
                Ok(Shape::One(s.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<Item>>()? {
                    items.push(match item.value {
                        Item::Path(path) => EnvFileRef {
                            path: Spanned {
                                value: path,
                                span: item.span,
                                text_at: item.text_at,
                            },
                            required: true,
                        },
                        Item::Long(long) => EnvFileRef {
                            path: long.path,
                            required: long.required.unwrap_or(true),
                        },
                    });
                }
                Ok(Shape::Many(items))
            }
        }
        enum Item {
            Path(String),
            Long(EnvFileItem),
        }
        impl<'de> Deserialize<'de> for Item {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = Item;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a path or a mapping with `path` and `required`")
                    }
                    fn visit_str<E: de::Error>(self, s: &str) -> Result<Item, E> {
                        Ok(Item::Path(s.to_owned()))
                    }
                    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Item, A::Error> {
                        EnvFileItem::deserialize(MapAccessDeserializer::new(map)).map(Item::Long)
                    }
                }
                d.deserialize_any(V)
            }
        }
        impl<'de> Deserialize<'de> for Shape {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(Whole)
            }
        }

        let whole = Spanned::<Shape>::deserialize(d)?;
        Ok(EnvFiles(match whole.value {
            Shape::One(path) => vec![EnvFileRef {
                path: Spanned {
                    value: path,
                    span: whole.span,
                    text_at: whole.text_at,
                },
                required: true,
            }],
            Shape::Many(items) => items,
        }))
    }
}

impl JsonSchema for EnvFiles {
    fn schema_name() -> Cow<'static, str> {
        "EnvFiles".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Files of KEY=value lines (dotenv syntax), read in order; relative to this file's folder.",
            "oneOf": [
                { "type": "string" },
                {
                    "type": "array",
                    "items": {
                        "oneOf": [
                            { "type": "string" },
                            {
                                "type": "object",
                                "properties": {
                                    "path": { "type": "string" },
                                    "required": {
                                        "type": "boolean",
                                        "description": "Whether a missing file is an error (default true)."
                                    }
                                },
                                "required": ["path"],
                                "additionalProperties": false
                            }
                        ]
                    }
                }
            ]
        })
    }
}

/// `when_to_run`: `always`, `once`, or a schedule.
#[derive(Debug, Clone)]
pub enum RawWhen {
    Plain(WhenToRun),
    Schedule(RawSchedule),
}

/// `{ every: 10m }` or `{ cron: "*/5 * * * *" }`; the model checks that exactly one is given.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchedule {
    pub every: Option<Spanned<HumanDuration>>,
    pub cron: Option<Spanned<String>>,
}

impl<'de> Deserialize<'de> for RawWhen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawWhen;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`always`, `once`, or a schedule such as `{ every: 10m }`")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RawWhen, E> {
                WhenToRun::deserialize(s.into_deserializer()).map(RawWhen::Plain)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawWhen, A::Error> {
                RawSchedule::deserialize(MapAccessDeserializer::new(map)).map(RawWhen::Schedule)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for RawWhen {
    fn schema_name() -> Cow<'static, str> {
        "WhenToRun".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let duration = generator.subschema_for::<HumanDuration>();
        json_schema!({
            "oneOf": [
                {
                    "description": "`always`: kept running, restarted when it exits; `once`: runs to completion.",
                    "enum": ["always", "once"]
                },
                {
                    "description": "Run to completion every DURATION, never two runs at once.",
                    "type": "object",
                    "properties": { "every": duration },
                    "required": ["every"],
                    "additionalProperties": false
                },
                {
                    "description": "Run to completion at the times of a 5-field cron expression (minute hour day-of-month month day-of-week), local time.",
                    "type": "object",
                    "properties": { "cron": { "type": "string", "examples": ["*/5 * * * *", "0 3 * * 1-5"] } },
                    "required": ["cron"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

//! `x:chart(name, { title = ..., unit = ..., bars = ... })`: a bar chart of
//! an experiment's results, written as `<name>.svg` and `<name>.txt` (the
//! same numbers as a table) into the experiment's artefacts folder (`labctl
//! run`); without one (`labctl test`) the chart is checked and not drawn.
//!
//! Bars are given in order as a list of `{ label, value }` pairs, or as a
//! map `{ [label] = value }` (drawn sorted by label). A value that is itself
//! a list of pairs or a map gives a group of bars, one per series, with a
//! legend: `{ "1 queue", { { "cpu0", 143534 }, { "cpu1", 56 } } }`.
//!
//! Drawn with plotters' SVG backend alone: labels are `<text>` elements the
//! viewer renders with its own fonts, so no font library or file is needed
//! (plotters only estimates text widths for layout).

use std::fmt::Write as _;
use std::path::Path;

use mlua::{Table, UserDataMethods, Value};
use plotters::prelude::*;

use super::options::Options;
use super::runtime::{fail, Runtime};

/// Colours of the series, in order (colour-blind friendly, from Tableau 10).
const PALETTE: &[RGBColor] = &[
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xe1, 0x57, 0x59),
    RGBColor(0x76, 0xb7, 0xb2),
    RGBColor(0xb0, 0x7a, 0xa1),
];
const FONT: &str = "sans-serif";

#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub title: String,
    /// What the values count ("pps", "packets", "Mbit/s"); the y axis says it.
    pub unit: String,
    /// Bar (or group) labels, in drawing order.
    pub categories: Vec<String>,
    /// Series names; one unnamed series for plain bars.
    pub series: Vec<String>,
    /// `values[category][series]`; `None` where a group lacks that series.
    pub values: Vec<Vec<Option<f64>>>,
}

/// x:chart("cpu-work", { title = "...", unit = "pps", bars = { { "1 queue", 123 }, ... } }):
/// <name>.svg and <name>.txt in the run folder (`labctl run`); checked only under `labctl test`.
pub(super) fn register<M: UserDataMethods<Runtime>>(methods: &mut M) {
    methods.add_method("chart", |lua, this, (name, opts): (String, Table)| {
        Options::check(lua, "x:chart()", Some(opts.clone()), &["title", "unit", "bars"])?;
        check_name(&name)?;
        let chart = Chart::from_lua(&opts)?;
        if this.has_taken(&name) {
            return Err(fail(format!(
                "x:chart({name:?}): a snapshot has that name; its text would overwrite {name}.txt"
            )));
        }
        if let Some(dir) = this.artifacts() {
            chart.write(&dir, &name).map_err(|e| fail(format!("x:chart({name:?}): {e}")))?;
        }
        Ok(chart.table())
    });
}

/// A point of the bar chart: category `i`, at `offset` (0..1) within its slot.
type At = (NestedValue<i32, f64>, f64);

/// The bar of series `j` in category `i`, `slot` wide, `v` high.
fn bar(i: usize, j: usize, slot: f64, v: f64, colour: RGBColor) -> Rectangle<At> {
    let x0 = 0.1 + slot * j as f64;
    let (left, right) = (NestedValue::Value(i as i32, x0), NestedValue::Value(i as i32, x0 + slot * 0.92));
    Rectangle::new([(left, v), (right, 0.0)], colour.filled())
}

/// The value written above that bar.
fn value_label(i: usize, j: usize, slot: f64, v: f64) -> Text<'static, At, String> {
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    let centre = NestedValue::Value(i as i32, 0.1 + slot * (j as f64 + 0.46));
    let style = TextStyle::from((FONT, 13).into_font())
        .color(&RGBColor(0x33, 0x33, 0x33))
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    Text::new(si(v), (centre, v), style)
}

#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// plotters' errors are generic over the backend; their text is kept.
    #[error("cannot draw the chart: {0}")]
    Draw(String),
    #[error("{}: {source}", path.display())]
    Write { path: std::path::PathBuf, source: std::io::Error },
}

fn draw(error: impl std::fmt::Display) -> ChartError {
    ChartError::Draw(error.to_string())
}

/// Chart names become file names in the run folder.
pub fn check_name(name: &str) -> mlua::Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(fail(format!("x:chart({name:?}): a chart name is a file name: letters, digits, '-', '_' and '.'")))
    }
}

fn number(value: &Value, what: &str) -> mlua::Result<f64> {
    match value {
        Value::Integer(i) => Ok(*i as f64),
        Value::Number(n) if n.is_finite() => Ok(*n),
        other => Err(fail(format!("x:chart(): {what}: expected a number, got {}", other.type_name()))),
    }
}

fn label(value: &Value, what: &str) -> mlua::Result<String> {
    match value {
        Value::String(s) => Ok(s.to_string_lossy()),
        Value::Integer(i) => Ok(i.to_string()),
        other => Err(fail(format!("x:chart(): {what}: expected a label, got {}", other.type_name()))),
    }
}

/// `{ { "a", v }, { "b", w } }` in order, or `{ a = v, b = w }` sorted by label.
fn pairs(t: &Table, what: &str) -> mlua::Result<Vec<(String, Value)>> {
    if t.raw_len() > 0 {
        t.sequence_values::<Value>()
            .enumerate()
            .map(|(i, item)| {
                let pair = match item? {
                    Value::Table(p) if p.raw_len() == 2 => p,
                    _ => return Err(fail(format!("x:chart(): {what}[{}]: expected a pair {{ label, value }}", i + 1))),
                };
                Ok((label(&pair.raw_get(1)?, what)?, pair.raw_get(2)?))
            })
            .collect()
    } else {
        let mut all = t
            .pairs::<Value, Value>()
            .map(|kv| {
                let (k, v) = kv?;
                Ok((label(&k, what)?, v))
            })
            .collect::<mlua::Result<Vec<_>>>()?;
        all.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }
}

impl Chart {
    /// Reads the options table of `x:chart(name, opts)`.
    pub fn from_lua(opts: &Table) -> mlua::Result<Chart> {
        for key in opts.pairs::<Value, Value>() {
            let (key, _) = key?;
            let known =
                matches!(&key, Value::String(s) if matches!(s.to_string_lossy().as_str(), "title" | "unit" | "bars"));
            if !known {
                return Err(fail(format!(
                    "x:chart(): unknown option {}: the options are title, unit and bars",
                    label(&key, "option").unwrap_or_else(|_| key.type_name().to_string())
                )));
            }
        }
        let title = opts.get::<Option<String>>("title")?.unwrap_or_default();
        let unit = opts.get::<Option<String>>("unit")?.unwrap_or_default();
        let bars = match opts.get::<Value>("bars")? {
            Value::Table(t) => t,
            _ => return Err(fail("x:chart(): give the values as bars = { { \"label\", value }, ... }")),
        };
        let bars = pairs(&bars, "bars")?;
        if bars.is_empty() {
            return Err(fail("x:chart(): bars is empty"));
        }
        let grouped = bars.iter().any(|(_, v)| matches!(v, Value::Table(_)));
        let mut chart = Chart { title, unit, categories: vec![], series: vec![], values: vec![] };
        if !grouped {
            chart.series.push(String::new());
            for (name, value) in &bars {
                chart.values.push(vec![Some(number(value, &format!("bars[{name:?}]"))?)]);
                chart.categories.push(name.clone());
            }
            return Ok(chart);
        }
        let mut groups = Vec::new();
        for (name, value) in &bars {
            let Value::Table(t) = value else {
                return Err(fail(format!("x:chart(): bars[{name:?}]: every bar is a group of series, or none is")));
            };
            let members = pairs(t, &format!("bars[{name:?}]"))?;
            for (series, _) in &members {
                if !chart.series.contains(series) {
                    chart.series.push(series.clone());
                }
            }
            groups.push((name.clone(), members));
        }
        for (name, members) in groups {
            let mut row = vec![None; chart.series.len()];
            for (series, value) in members {
                let i = chart.series.iter().position(|s| *s == series).expect("collected above");
                row[i] = Some(number(&value, &format!("bars[{name:?}][{series:?}]"))?);
            }
            chart.categories.push(name);
            chart.values.push(row);
        }
        Ok(chart)
    }

    fn grouped(&self) -> bool {
        self.series.len() > 1 || self.series.first().is_some_and(|s| !s.is_empty())
    }

    /// The numbers as an aligned text table, the title on top.
    pub fn table(&self) -> String {
        let unit = if self.unit.is_empty() { String::new() } else { format!(" ({})", self.unit) };
        let mut out = format!("{}{unit}\n", self.title);
        let headers: Vec<String> = if self.grouped() {
            self.series.clone()
        } else {
            vec![if self.unit.is_empty() { "value".into() } else { self.unit.clone() }]
        };
        let cells: Vec<Vec<String>> =
            self.values.iter().map(|row| row.iter().map(|v| v.map_or("-".into(), plain)).collect()).collect();
        let first = self.categories.iter().map(|c| c.chars().count()).max().unwrap_or(0);
        let widths: Vec<usize> = headers
            .iter()
            .enumerate()
            .map(|(j, h)| cells.iter().map(|r| r[j].len()).chain([h.chars().count()]).max().unwrap_or(0))
            .collect();
        let _ = write!(out, "{:first$}", "");
        for (h, w) in headers.iter().zip(&widths) {
            let _ = write!(out, "  {h:>w$}");
        }
        out.push('\n');
        for (category, row) in self.categories.iter().zip(&cells) {
            let _ = write!(out, "{category:<first$}");
            for (cell, w) in row.iter().zip(&widths) {
                let _ = write!(out, "  {cell:>w$}");
            }
            out.push('\n');
        }
        out
    }

    /// The chart as an SVG document.
    pub fn svg(&self) -> Result<String, ChartError> {
        let n = self.categories.len();
        let per_group = self.series.len().max(1);
        let width = (160 + n * (40 + 56 * per_group)).clamp(640, 1600) as u32;
        let height = 480u32;
        let top = self.values.iter().flatten().flatten().fold(0.0f64, |a, &b| a.max(b));
        // Headroom for the value labels above the bars (and the legend).
        let y_max = if top > 0.0 { top * if self.grouped() { 1.3 } else { 1.15 } } else { 1.0 };
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
            root.fill(&WHITE).map_err(draw)?;
            let area = if self.title.is_empty() {
                root.clone()
            } else {
                root.titled(&self.title, (FONT, 22)).map_err(draw)?
            };
            let x = (0..n as i32 - 1).nested_coord(|_| 0.0..1.0);
            let mut chart = ChartBuilder::on(&area)
                .margin(16)
                .x_label_area_size(40)
                .y_label_area_size(80)
                .build_cartesian_2d(x, 0.0..y_max)
                .map_err(draw)?;
            let names = &self.categories;
            let x_label = |v: &NestedValue<i32, f64>| match v {
                NestedValue::Category(i) => names.get(*i as usize).cloned().unwrap_or_default(),
                NestedValue::Value(..) => String::new(),
            };
            let y_label = |v: &f64| si(*v);
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(n)
                .x_label_formatter(&x_label)
                .y_labels(6)
                .y_label_formatter(&y_label)
                .y_desc(self.unit.as_str())
                .label_style((FONT, 15))
                .axis_desc_style((FONT, 15))
                .light_line_style(RGBColor(0xee, 0xee, 0xee))
                .bold_line_style(RGBColor(0xdd, 0xdd, 0xdd))
                .draw()
                .map_err(draw)?;

            // Each group fills 80% of its slot; its bars share that equally.
            let slot = 0.8 / per_group as f64;
            for (j, series) in self.series.iter().enumerate() {
                let colour = PALETTE[j % PALETTE.len()];
                let bars =
                    self.values.iter().enumerate().filter_map(move |(i, row)| Some(bar(i, j, slot, row[j]?, colour)));
                let drawn = chart.draw_series(bars).map_err(draw)?;
                if self.grouped() {
                    drawn
                        .label(series.as_str())
                        .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], colour.filled()));
                }
                let labels =
                    self.values.iter().enumerate().filter_map(move |(i, row)| Some(value_label(i, j, slot, row[j]?)));
                chart.draw_series(labels).map_err(draw)?;
            }
            if self.grouped() {
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperRight)
                    .label_font((FONT, 14))
                    .background_style(WHITE.mix(0.9))
                    .border_style(RGBColor(0xcc, 0xcc, 0xcc))
                    .draw()
                    .map_err(draw)?;
            }
            root.present().map_err(draw)?;
        }
        Ok(svg)
    }

    /// Writes `<name>.svg` and `<name>.txt` into `dir` (created if needed).
    pub fn write(&self, dir: &Path, name: &str) -> Result<(), ChartError> {
        std::fs::create_dir_all(dir).map_err(|source| ChartError::Write { path: dir.into(), source })?;
        let svg = self.svg()?;
        for (file, text) in [(format!("{name}.svg"), svg), (format!("{name}.txt"), self.table())] {
            let path = dir.join(file);
            std::fs::write(&path, text).map_err(|source| ChartError::Write { path: path.clone(), source })?;
        }
        Ok(())
    }
}

/// A value for a table cell: whole numbers as they are, others to 3 decimals.
fn plain(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.3}")
    }
}

/// 1234567 -> "1.23M": short labels for axes and bars.
fn si(v: f64) -> String {
    let (scaled, suffix) = match v.abs() {
        a if a >= 1e9 => (v / 1e9, "G"),
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e3 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    let text = if scaled.fract() == 0.0 || scaled.abs() >= 100.0 {
        format!("{scaled:.0}")
    } else if scaled.abs() >= 10.0 {
        format!("{scaled:.1}")
    } else {
        format!("{scaled:.2}")
    };
    format!("{text}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlua::Lua;

    fn chart(lua: &Lua, opts: &str) -> mlua::Result<Chart> {
        let t: Table = lua.load(opts).eval()?;
        Chart::from_lua(&t)
    }

    #[test]
    fn ordered_pairs_keep_their_order_and_maps_are_sorted() {
        let lua = Lua::new();
        let c = chart(&lua, r#"{ title = "t", unit = "pps", bars = { { "b", 2 }, { "a", 1.5 } } }"#).unwrap();
        assert_eq!(c.categories, ["b", "a"]);
        assert_eq!(c.values, [[Some(2.0)], [Some(1.5)]]);
        let c = chart(&lua, r#"{ bars = { zeta = 1, alpha = 2 } }"#).unwrap();
        assert_eq!(c.categories, ["alpha", "zeta"]);
        assert!(!c.grouped());
    }

    #[test]
    fn groups_collect_every_series() {
        let lua = Lua::new();
        let c = chart(
            &lua,
            r#"{ title = "work", unit = "packets",
                 bars = { { "1 queue", { { "cpu0", 100 }, { "cpu1", 0 } } }, { "RPS", { cpu1 = 60, cpu2 = 3 } } } }"#,
        )
        .unwrap();
        assert_eq!(c.series, ["cpu0", "cpu1", "cpu2"]);
        assert_eq!(c.values[0], [Some(100.0), Some(0.0), None]);
        assert_eq!(c.values[1], [None, Some(60.0), Some(3.0)]);
        let table = c.table();
        assert_eq!(
            table,
            "work (packets)\n         cpu0  cpu1  cpu2\n1 queue   100     0     -\nRPS         -    60     3\n"
        );
        let svg = c.svg().unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("1 queue") && svg.contains("cpu2"), "{svg}");
    }

    #[test]
    fn mistakes_are_reported() {
        let lua = Lua::new();
        for (opts, says) in [
            (r#"{ title = "t" }"#, "bars ="),
            (r#"{ bars = {} }"#, "empty"),
            (r#"{ bars = { a = "x" } }"#, "expected a number"),
            (r#"{ bars = { a = 1, b = { c = 2 } } }"#, "every bar is a group"),
            (r#"{ bars = { a = 1 }, colour = "red" }"#, "unknown option colour"),
            (r#"{ bars = { { "a" } } }"#, "expected a pair"),
        ] {
            let e = chart(&lua, opts).unwrap_err().to_string();
            assert!(e.contains(says), "{opts}: {e}");
        }
        assert!(check_name("cpu-work_1.v2").is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "a b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn si_labels_are_short() {
        assert_eq!(si(0.0), "0");
        assert_eq!(si(950.0), "950");
        assert_eq!(si(143_534.0), "144k");
        assert_eq!(si(1_234_567.0), "1.23M");
        assert_eq!(si(5_648_776_947.0), "5.65G");
        assert_eq!(si(12_500.0), "12.5k");
    }
}

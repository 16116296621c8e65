//! The report: one markdown table of measures, each with its target and whether it was met.

use std::fmt::Write;

/// A measure and, when it has one, its target.
struct Row {
    section: &'static str,
    measure: String,
    value: String,
    target: String,
    met: Option<bool>,
}

#[derive(Default)]
pub struct Report {
    rows: Vec<Row>,
}

impl Report {
    /// A figure without a target.
    pub fn figure(&mut self, section: &'static str, measure: impl Into<String>, value: String) {
        self.rows.push(Row {
            section,
            measure: measure.into(),
            value,
            target: String::new(),
            met: None,
        });
    }

    /// A figure checked against its target.
    pub fn target(
        &mut self,
        section: &'static str,
        measure: impl Into<String>,
        value: String,
        target: &str,
        met: bool,
    ) {
        self.rows.push(Row {
            section,
            measure: measure.into(),
            value,
            target: target.to_owned(),
            met: Some(met),
        });
    }

    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "| section | measure | value | target | met |\n| --- | --- | ---: | --- | --- |\n",
        );
        for r in &self.rows {
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "",
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {met} |",
                r.section, r.measure, r.value, r.target
            );
        }
        out
    }
}

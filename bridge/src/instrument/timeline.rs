//! The timeline picture: where each ping's time went, one row per ping, as SVG.
//!
//! `harness/bundle.py` gathers the times of one experiment run (the bridge's
//! record, Claude Code's streamed events, the dry-run model's request log) into a small
//! JSON file; [`run`] reads it and draws it with `plotters`: per ping an upper lane for the
//! bridge (queued, agent, reply) and a lower lane for the client (start-up, each model
//! request, each tool call), coloured by [`Phase`], the axis in seconds from the ping's
//! arrival on the TUN device, and a legend under the chart.
//!
//! ```json
//! {"title": "dry-run, continuous", "rows": [{"label": "ping 1",
//!   "spans": [{"phase": "queued", "start": 0.0, "end": 0.004}, {"phase": "model", "start": 0.01, "end": 0.05}]}]}
//! ```

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde::Deserialize;

/// What a span of a ping's time was spent on.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Arrival on the TUN device to the hand-over to the agent (bridge lane).
    Queued,
    /// Hand-over to the agent's WRITE (bridge lane).
    Agent,
    /// The WRITE to the reply on the wire (bridge lane).
    Reply,
    /// The request was never answered: it aged out, or nobody wrote a reply (bridge lane).
    Expired,
    /// The client process starting, until it reports itself ready (client lane).
    ClientStart,
    /// One model request, from sending it to the last byte of the answer (client lane).
    Model,
    /// One tool call, from the model's request to its result (client lane).
    Tool,
}

impl Phase {
    /// Every phase, in legend order.
    pub const ALL: [Phase; 7] = [
        Phase::Queued,
        Phase::Agent,
        Phase::Reply,
        Phase::Expired,
        Phase::ClientStart,
        Phase::Model,
        Phase::Tool,
    ];

    /// The legend text.
    pub fn label(self) -> &'static str {
        match self {
            Phase::Queued => "queued in the bridge",
            Phase::Agent => "agent: hand-over to WRITE",
            Phase::Reply => "WRITE to reply on the wire",
            Phase::Expired => "never answered",
            Phase::ClientStart => "client start-up",
            Phase::Model => "model request",
            Phase::Tool => "tool call",
        }
    }

    fn colour(self) -> RGBColor {
        match self {
            Phase::Queued => RGBColor(189, 189, 189),
            Phase::Agent => RGBColor(49, 130, 189),
            Phase::Reply => RGBColor(0, 0, 0),
            Phase::Expired => RGBColor(222, 45, 38),
            Phase::ClientStart => RGBColor(253, 174, 107),
            Phase::Model => RGBColor(117, 107, 177),
            Phase::Tool => RGBColor(49, 163, 84),
        }
    }

    /// True for the bridge's lane (upper), false for the client's (lower).
    fn bridge_lane(self) -> bool {
        matches!(
            self,
            Phase::Queued | Phase::Agent | Phase::Reply | Phase::Expired
        )
    }
}

/// One span of a ping's time, in seconds from its arrival.
#[derive(Deserialize, Debug, Clone, PartialEq)]
pub struct Span {
    pub phase: Phase,
    pub start: f64,
    pub end: f64,
}

/// One ping: its label and its spans.
#[derive(Deserialize, Debug, Clone, PartialEq)]
pub struct Row {
    pub label: String,
    pub spans: Vec<Span>,
}

/// A whole picture: a title and one row per ping, top to bottom.
#[derive(Deserialize, Debug, Clone, PartialEq)]
pub struct Timeline {
    pub title: String,
    pub rows: Vec<Row>,
}

/// What went wrong while drawing a timeline.
#[derive(Debug, thiserror::Error)]
pub enum TimelineError {
    /// The input file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    /// The input is not a timeline.
    #[error("{}: not a timeline: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// The timeline has no row, or a span is not finite or ends before it starts.
    #[error("timeline not drawn: {0}")]
    Invalid(String),
    /// plotters failed to draw.
    #[error("timeline not drawn: {0}")]
    Draw(String),
    /// The SVG could not be written.
    #[error("{}: cannot write: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
}

fn draw_error(e: impl fmt::Display) -> TimelineError {
    TimelineError::Draw(e.to_string())
}

const WIDTH: u32 = 1000;
const ROW_PX: u32 = 34;
const LEGEND_PX: u32 = 60;
/// The narrowest a span is drawn, as a share of the axis, so instants stay visible.
const MIN_SHARE: f64 = 0.002;

impl Timeline {
    /// Checks that there is something to draw and every span is sane.
    fn check(&self) -> Result<(), TimelineError> {
        if self.rows.is_empty() {
            return Err(TimelineError::Invalid("no pings".into()));
        }
        for row in &self.rows {
            for s in &row.spans {
                if !(s.start.is_finite() && s.end.is_finite() && s.end >= s.start) {
                    return Err(TimelineError::Invalid(format!(
                        "{}: {:?} span from {} to {}",
                        row.label, s.phase, s.start, s.end
                    )));
                }
            }
        }
        Ok(())
    }

    /// The axis range: every span, and 0 (the arrival), with a little room on the right.
    fn x_range(&self) -> (f64, f64) {
        let spans = self.rows.iter().flat_map(|r| &r.spans);
        let lo = spans.clone().map(|s| s.start).fold(0.0, f64::min);
        let hi = spans.map(|s| s.end).fold(0.0, f64::max);
        let hi = if hi - lo < 1e-3 { lo + 1e-3 } else { hi };
        (lo, hi + (hi - lo) * 0.02)
    }

    /// The phases that occur, in legend order.
    fn phases(&self) -> Vec<Phase> {
        let used = |p: &Phase| {
            self.rows
                .iter()
                .any(|r| r.spans.iter().any(|s| s.phase == *p))
        };
        Phase::ALL.into_iter().filter(used).collect()
    }
}

/// Draws the timeline as an SVG document.
pub fn render(timeline: &Timeline) -> Result<String, TimelineError> {
    timeline.check()?;
    let rows = timeline.rows.len();
    let height = 90 + ROW_PX * rows as u32 + LEGEND_PX;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let (chart_area, legend_area) = root.split_vertically(height - LEGEND_PX);
        draw_chart(timeline, &chart_area)?;
        draw_legend(&timeline.phases(), &legend_area)?;
        root.present().map_err(draw_error)?;
    }
    Ok(svg)
}

fn draw_chart<DB: DrawingBackend>(
    timeline: &Timeline,
    area: &DrawingArea<DB, plotters::coord::Shift>,
) -> Result<(), TimelineError> {
    let rows = timeline.rows.len();
    let (lo, hi) = timeline.x_range();
    // Row i (from the top) is centred on y = rows - 1 - i; labels sit on whole numbers.
    let top = rows as f64 - 0.5;
    let mut chart = ChartBuilder::on(area)
        .caption(&timeline.title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(110)
        .build_cartesian_2d(lo..hi, -0.5..top)
        .map_err(draw_error)?;
    let label_of = |y: &f64| {
        let i = rows as f64 - 1.0 - y.round();
        if (y - y.round()).abs() > 1e-6 || i < 0.0 {
            return String::new();
        }
        timeline
            .rows
            .get(i as usize)
            .map_or(String::new(), |r| r.label.clone())
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(rows.min(40) + 1)
        .y_label_formatter(&label_of)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .x_desc("seconds from the ping's arrival at the TUN device")
        .x_label_formatter(&|x| format!("{x:.2}"))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(draw_error)?;
    let min_width = (hi - lo) * MIN_SHARE;
    let bars = timeline.rows.iter().enumerate().flat_map(|(i, row)| {
        let centre = rows as f64 - 1.0 - i as f64;
        row.spans.iter().map(move |s| {
            let (y0, y1) = if s.phase.bridge_lane() {
                (centre + 0.04, centre + 0.4)
            } else {
                (centre - 0.4, centre - 0.04)
            };
            let end = s.end.max(s.start + min_width);
            Rectangle::new([(s.start, y0), (end, y1)], s.phase.colour().filled())
        })
    });
    chart.draw_series(bars).map_err(draw_error)?;
    Ok(())
}

fn draw_legend<DB: DrawingBackend>(
    phases: &[Phase],
    area: &DrawingArea<DB, plotters::coord::Shift>,
) -> Result<(), TimelineError> {
    let style = ("sans-serif", 14).into_font().color(&BLACK);
    let text = Text::new(
        "upper lane: the bridge; lower lane: the client",
        (120, 2),
        style.clone(),
    );
    area.draw(&text).map_err(draw_error)?;
    let per_line = 4;
    for (n, phase) in phases.iter().enumerate() {
        let x = 120 + (n % per_line) as i32 * 215;
        let y = 22 + (n / per_line) as i32 * 18;
        area.draw(&Rectangle::new(
            [(x, y), (x + 14, y + 12)],
            phase.colour().filled(),
        ))
        .map_err(draw_error)?;
        area.draw(&Text::new(phase.label(), (x + 20, y), style.clone()))
            .map_err(draw_error)?;
    }
    Ok(())
}

/// Reads a timeline from `input` (JSON) and writes it to `output` as SVG.
pub fn run(input: &Path, output: &Path) -> Result<(), TimelineError> {
    let text = fs::read_to_string(input).map_err(|source| TimelineError::Read {
        path: input.to_path_buf(),
        source,
    })?;
    let timeline: Timeline =
        serde_json::from_str(&text).map_err(|source| TimelineError::Parse {
            path: input.to_path_buf(),
            source,
        })?;
    let svg = render(&timeline)?;
    fs::write(output, svg).map_err(|source| TimelineError::Write {
        path: output.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod test {
    use super::*;

    fn span(phase: Phase, start: f64, end: f64) -> Span {
        Span { phase, start, end }
    }

    fn two_pings() -> Timeline {
        Timeline {
            title: "dry-run, continuous".into(),
            rows: vec![
                Row {
                    label: "ping 1".into(),
                    spans: vec![
                        span(Phase::Queued, 0.0, 0.002),
                        span(Phase::Agent, 0.002, 0.060),
                        span(Phase::Reply, 0.060, 0.0601),
                        span(Phase::Model, 0.010, 0.040),
                        span(Phase::Tool, 0.041, 0.055),
                    ],
                },
                Row {
                    label: "ping 2".into(),
                    spans: vec![span(Phase::Expired, 0.0, 1.5)],
                },
            ],
        }
    }

    #[test]
    fn draws_one_row_per_ping_a_legend_and_an_axis_in_seconds() {
        let svg = render(&two_pings()).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        for text in [
            "dry-run, continuous",
            "ping 1",
            "ping 2",
            "seconds from the ping",
            "model request",
            "never answered",
        ] {
            assert!(svg.contains(text), "no {text:?} in the SVG");
        }
        // Phases that do not occur stay out of the legend.
        assert!(!svg.contains("client start-up"));
        // One bar per span, each filled with its phase's colour.
        assert!(svg.contains("fill=\"#756BB1\""), "model colour missing");
        assert!(svg.contains("fill=\"#DE2D26\""), "expired colour missing");
    }

    #[test]
    fn reads_the_json_the_experiment_writes() {
        let json = r#"{"title": "t", "rows": [{"label": "ping 1",
            "spans": [{"phase": "client_start", "start": -0.1, "end": 0.7},
                      {"phase": "queued", "start": 0, "end": 0.8}]}]}"#;
        let t: Timeline = serde_json::from_str(json).unwrap();
        assert_eq!(t.rows[0].spans[0].phase, Phase::ClientStart);
        assert_eq!(t.x_range().0, -0.1);
        assert!(render(&t).unwrap().contains("client start-up"));
    }

    #[test]
    fn refuses_what_cannot_be_drawn() {
        let empty = Timeline {
            title: "t".into(),
            rows: vec![],
        };
        assert!(matches!(render(&empty), Err(TimelineError::Invalid(_))));
        let mut backwards = two_pings();
        backwards.rows[1].spans[0] = span(Phase::Queued, 2.0, 1.0);
        let err = render(&backwards).unwrap_err().to_string();
        assert!(err.contains("ping 2"), "{err}");
        assert!(serde_json::from_str::<Timeline>(
            r#"{"title":"t","rows":[{"label":"x",
            "spans":[{"phase":"lunch","start":0,"end":1}]}]}"#
        )
        .is_err());
    }
}

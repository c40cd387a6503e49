//! The three SVG plots of docs/BENCHMARKS.md.

use plotters::prelude::*;
use std::path::Path;

/// Distinct colours, in series order.
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// A named line of (x, y) points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed-looking (thin) for limits, thick for shmq.
    pub thick: bool,
}

fn bounds(series: &[Series]) -> (f64, f64, f64, f64) {
    let pts = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    (x0, x1, y0 / 1.5, y1 * 1.5)
}

/// A line chart with a logarithmic y axis. `log_x`: logarithmic x axis too;
/// `x_labels`: label x positions 0, 1, 2... with these names instead.
pub fn chart(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
    log_x: bool,
    x_labels: Option<&[&str]>,
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let (x0, x1, y0, y1) = bounds(series);
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70);
    let fmt_y = |v: &f64| {
        if *v >= 100.0 {
            format!("{v:.0}")
        } else if *v >= 1.0 {
            format!("{v:.1}")
        } else {
            format!("{v:.2}")
        }
    };
    macro_rules! draw {
        ($chart:expr, $xfmt:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(x_desc)
                .y_desc(y_desc)
                .x_label_formatter($xfmt)
                .y_label_formatter(&fmt_y)
                .draw()?;
            for (i, s) in series.iter().enumerate() {
                let color = COLORS[i % COLORS.len()];
                let style = color.stroke_width(if s.thick { 3 } else { 1 });
                chart
                    .draw_series(LineSeries::new(s.points.iter().copied(), style))?
                    .label(s.name.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
                    });
                chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()?;
        }};
    }
    let size_fmt = |v: &f64| {
        let b = *v as u64;
        if b >= 1 << 20 {
            format!("{} MiB", b >> 20)
        } else if b >= 1 << 10 {
            format!("{} KiB", b >> 10)
        } else {
            format!("{b} B")
        }
    };
    if log_x {
        let c = builder.build_cartesian_2d((x0..x1 * 1.2).log_scale(), (y0..y1).log_scale())?;
        draw!(c, &size_fmt);
    } else {
        let names: Vec<String> = x_labels
            .unwrap_or(&[])
            .iter()
            .map(|s| s.to_string())
            .collect();
        let label = move |v: &f64| {
            let i = v.round();
            if (v - i).abs() < 1e-6 && i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        let c = builder.build_cartesian_2d((x0 - 0.2)..(x1 + 0.2), (y0..y1).log_scale())?;
        draw!(c, &label);
    }
    root.present()?;
    Ok(())
}

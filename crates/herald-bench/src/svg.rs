//! Horizontal bar charts and line charts as plain SVG, written without any
//! external tool.

/// One bar: the system, its value, and the text printed after the bar.
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub text: String,
}

const WIDTH: f64 = 760.0;
const LABEL_WIDTH: f64 = 190.0;
const BAR_AREA: f64 = 400.0;
const ROW: f64 = 32.0;
const TOP: f64 = 48.0;

/// A chart titled `title` with `note` under it (e.g. "higher is better").
pub fn bar_chart(title: &str, note: &str, bars: &[Bar]) -> String {
    let max = bars
        .iter()
        .map(|b| b.value)
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let height = TOP + ROW * bars.len() as f64 + 12.0;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"13\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n\
         <text x=\"12\" y=\"20\" font-size=\"15\" font-weight=\"bold\" fill=\"#222\">{}</text>\n\
         <text x=\"12\" y=\"38\" font-size=\"12\" fill=\"#666\">{}</text>\n",
        escape(title),
        escape(note)
    );
    for (i, bar) in bars.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        let width = (bar.value.max(0.0) / max * BAR_AREA).max(1.0);
        let color = if i == 0 { "#d9480f" } else { "#868e96" };
        out.push_str(&format!(
            "<text x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\" fill=\"#222\">{label}</text>\n\
             <rect x=\"{bx}\" y=\"{by}\" width=\"{width:.1}\" height=\"{bh}\" fill=\"{color}\"/>\n\
             <text x=\"{vx:.1}\" y=\"{ty}\" fill=\"#222\">{text}</text>\n",
            lx = LABEL_WIDTH - 8.0,
            ty = y + 18.0,
            label = escape(&bar.label),
            bx = LABEL_WIDTH,
            by = y + 5.0,
            bh = ROW - 10.0,
            vx = LABEL_WIDTH + width + 6.0,
            text = escape(&bar.text),
        ));
    }
    out.push_str("</svg>\n");
    out
}

/// One line of a [`line_chart`]: `(x, y)` points in x order.
pub struct Series {
    pub label: String,
    pub unit: String,
    pub points: Vec<(f64, f64)>,
}

const PANEL_HEIGHT: f64 = 150.0;
const PANEL_GAP: f64 = 44.0;
const PLOT_LEFT: f64 = 70.0;
const PLOT_WIDTH: f64 = 660.0;
const PANEL_COLORS: [&str; 3] = ["#d9480f", "#1971c2", "#2f9e44"];

/// Stacked panels, one per series, each with its own y axis from 0 to its
/// highest value, sharing the x axis named `x_label`: two quantities in
/// different units stay readable without a second axis on one plot.
pub fn line_chart(title: &str, x_label: &str, series: &[Series]) -> String {
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (x_min, x_max) = xs.fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(x), hi.max(x)));
    let (x_min, x_span) = if x_min > x_max {
        (0.0, 1.0)
    } else {
        (x_min, (x_max - x_min).max(1e-9))
    };
    let height = TOP + series.len() as f64 * (PANEL_HEIGHT + PANEL_GAP) + 8.0;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n\
         <text x=\"12\" y=\"20\" font-size=\"15\" font-weight=\"bold\" fill=\"#222\">{}</text>\n",
        escape(title)
    );
    for (i, line) in series.iter().enumerate() {
        let top = TOP + i as f64 * (PANEL_HEIGHT + PANEL_GAP);
        let bottom = top + PANEL_HEIGHT;
        let y_max = line.points.iter().map(|p| p.1).fold(0.0_f64, f64::max);
        let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
        let color = PANEL_COLORS[i % PANEL_COLORS.len()];
        out.push_str(&format!(
            "<text x=\"{PLOT_LEFT}\" y=\"{ly:.1}\" font-weight=\"bold\" fill=\"{color}\">{label} ({unit})</text>\n\
             <rect x=\"{PLOT_LEFT}\" y=\"{top:.1}\" width=\"{PLOT_WIDTH}\" height=\"{PANEL_HEIGHT}\" fill=\"none\" stroke=\"#ced4da\"/>\n",
            ly = top - 6.0,
            label = escape(&line.label),
            unit = escape(&line.unit),
        ));
        for step in 0..=2 {
            let value = y_max * f64::from(step) / 2.0;
            let y = bottom - PANEL_HEIGHT * f64::from(step) / 2.0;
            out.push_str(&format!(
                "<text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\" fill=\"#666\">{value:.1}</text>\n",
                tx = PLOT_LEFT - 6.0,
                ty = y + 4.0,
            ));
        }
        let points: Vec<String> = line
            .points
            .iter()
            .map(|&(x, y)| {
                let px = PLOT_LEFT + (x - x_min) / x_span * PLOT_WIDTH;
                let py = bottom - y.max(0.0) / y_max * PANEL_HEIGHT;
                format!("{px:.1},{py:.1}")
            })
            .collect();
        out.push_str(&format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>\n",
            points.join(" ")
        ));
        out.push_str(&format!(
            "<text x=\"{PLOT_LEFT}\" y=\"{ty:.1}\" fill=\"#666\">{x_min}</text>\n\
             <text x=\"{rx}\" y=\"{ty:.1}\" text-anchor=\"end\" fill=\"#666\">{x_max} {x_label}</text>\n",
            ty = bottom + 15.0,
            rx = PLOT_LEFT + PLOT_WIDTH,
            x_max = x_min + x_span,
            x_label = escape(x_label),
        ));
    }
    out.push_str("</svg>\n");
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_has_one_bar_per_value_and_escapes_text() {
        let bars = [
            Bar {
                label: "A & B".into(),
                value: 2.0,
                text: "2".into(),
            },
            Bar {
                label: "C".into(),
                value: 1.0,
                text: "1".into(),
            },
        ];
        let svg = bar_chart("t<", "n", &bars);
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains("A &amp; B") && svg.contains("t&lt;"));
        assert!(svg.contains("width=\"400.0\"") && svg.contains("width=\"200.0\""));
    }

    #[test]
    fn a_line_chart_has_one_panel_and_line_per_series() {
        let rss = Series {
            label: "RSS".into(),
            unit: "MiB".into(),
            points: vec![(1.0, 10.0), (2.0, 20.0), (3.0, 20.0)],
        };
        let p99 = Series {
            label: "p99 <latency>".into(),
            unit: "ms".into(),
            points: vec![(1.0, 0.0), (2.0, 5.5), (3.0, 1.0)],
        };
        let svg = line_chart("Soak", "minute", &[rss, p99]);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("p99 &lt;latency&gt; (ms)"));
        // x spans the plot; the highest value sits at 1/1.1 of the panel height.
        assert!(svg.contains("points=\"70.0,"), "{svg}");
        assert!(svg.contains(" 730.0,"), "{svg}");
        let top_of_rss = TOP + PANEL_HEIGHT - PANEL_HEIGHT / 1.1;
        assert!(svg.contains(&format!("400.0,{top_of_rss:.1}")), "{svg}");
        assert!(svg.contains(">3 minute</text>"), "{svg}");
    }
}

//! Horizontal bar charts as plain SVG, written without any external tool.

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
}

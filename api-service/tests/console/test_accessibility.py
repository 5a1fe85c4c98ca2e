"""Accessibility basics in the same real browser: every control has a name, a query can be
written and run with the keyboard alone, and the default theme's text meets WCAG AA contrast."""

from __future__ import annotations

from .console_page import TIMEOUT_MS, grid_rows, open_console, run_and_wait, wait_ready

# Names a control by the rules screen readers use, simplified: aria-label, aria-labelledby,
# a <label>, or (buttons, summaries) its own text. Walks into open shadow roots (the editor).
UNNAMED_CONTROLS = """() => {
  const unnamed = [];
  const visit = (root) => {
    for (const el of root.querySelectorAll('input, select, textarea, button, summary, [role=textbox], [role=tab], canvas, [tabindex="0"]')) {
      if (el.offsetParent === null && el.getClientRects().length === 0) continue;
      const byLabel = el.labels && [...el.labels].some(l => l.textContent.trim());
      const byRef = (el.getAttribute('aria-labelledby') || '').split(/\\s+/).some(id => id && document.getElementById(id)?.textContent.trim());
      const own = ['BUTTON', 'SUMMARY'].includes(el.tagName) || el.getAttribute('role') === 'tab' ? el.textContent.trim() : '';
      if (!(el.getAttribute('aria-label') || byLabel || byRef || own)) unnamed.push(el.outerHTML.slice(0, 120));
    }
    for (const host of root.querySelectorAll('*')) if (host.shadowRoot) visit(host.shadowRoot);
  };
  visit(document);
  return unnamed;
}"""

# WCAG 2 contrast of every visible text against the first opaque background behind it.
LOW_CONTRAST = """() => {
  const rgb = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
    .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  const background = (el) => {
    for (let e = el; e; e = e.parentElement || e.getRootNode().host) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] === 1)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const failures = [];
  const visit = (root) => {
    for (const el of root.querySelectorAll('*')) {
      if (el.shadowRoot) visit(el.shadowRoot);
      const text = [...el.childNodes].filter(n => n.nodeType === 3).map(n => n.textContent).join('').trim();
      if (!text || el.closest('[hidden]') || el.getClientRects().length === 0 || el.disabled) continue;
      const style = getComputedStyle(el);
      if (style.visibility === 'hidden' || Number(style.opacity) === 0) continue;
      const [a, b] = [lum(rgb(style.color).slice(0, 3)), lum(background(el))];
      const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      const large = parseFloat(style.fontSize) >= 24 || (parseFloat(style.fontSize) >= 18.66 && Number(style.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5)) failures.push(`${ratio.toFixed(2)} ${el.tagName}.${el.className}: ${text.slice(0, 40)}`);
    }
  };
  visit(document);
  return failures;
}"""

DEEP_ACTIVE = """() => { let a = document.activeElement; while (a && a.shadowRoot && a.shadowRoot.activeElement) a = a.shadowRoot.activeElement;
  return a ? (a.id || a.className || a.tagName) : null; }"""


def test_every_control_has_an_accessible_name(page, live, full_token: str) -> None:  # noqa: ANN001
    open_console(page, live.url, f"dev-token={full_token}")
    assert page.evaluate(UNNAMED_CONTROLS) == []
    page.click("#use-dev-token")
    wait_ready(page)
    run_and_wait(page)
    page.click("#tab-chart")
    page.click("#named details summary >> nth=0")
    assert page.evaluate(UNNAMED_CONTROLS) == []
    assert page.get_attribute(".cm-content", "aria-label") == "SQL query"


def test_a_query_can_be_written_and_run_with_the_keyboard_only(page, live, full_token: str) -> None:  # noqa: ANN001
    open_console(page, live.url, f"dev-token={full_token}")
    for _ in range(10):  # Tab to the dev-token button, then Enter
        page.keyboard.press("Tab")
        if page.evaluate(DEEP_ACTIVE) == "use-dev-token":
            break
    page.keyboard.press("Enter")
    wait_ready(page)
    for _ in range(80):  # from the top of the page, Tab until the editor has focus
        page.keyboard.press("Tab")
        if page.evaluate(DEEP_ACTIVE) == "cm-content":
            break
    else:
        raise AssertionError("the SQL editor cannot be reached with Tab")
    page.keyboard.press("Control+A")
    page.keyboard.type("SELECT id, sku FROM products ORDER BY id LIMIT 3")
    page.keyboard.press("Escape")  # close the completion popup if one opened
    run_and_wait(page, how="keyboard")
    assert [r[0] for r in grid_rows(page)] == ["1", "2", "3"]
    page.keyboard.press("Tab")  # and out of the editor again: Tab is not captured
    assert page.evaluate(DEEP_ACTIVE) != "cm-content"
    page.wait_for_selector("#results:not([hidden])", timeout=TIMEOUT_MS)


def test_default_theme_text_meets_wcag_aa_contrast(page, live, full_token: str) -> None:  # noqa: ANN001
    open_console(page, live.url, f"dev-token={full_token}")
    assert page.evaluate(LOW_CONTRAST) == []
    page.click("#use-dev-token")
    wait_ready(page)
    page.click("details[data-table=orders] summary")
    run_and_wait(page)
    assert page.evaluate(LOW_CONTRAST) == []
    page.click("#tab-chart")
    assert page.evaluate(LOW_CONTRAST) == []

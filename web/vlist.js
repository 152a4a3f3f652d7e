// A virtualised list: only the rows in view (plus a margin) exist in the DOM. Rows have a
// fixed height; `render(first, rows)` fills the reused row elements. Call `update()` (at most
// once per animation frame) when the data changed.

export class VirtualList {
  /**
   * @param {HTMLElement} viewport scrolling element (fixed height, overflow auto)
   * @param {{rowHeight: number, count: () => number, render: (first: number, rows: HTMLElement[]) => void,
   *          makeRow: () => HTMLElement}} opts
   */
  constructor(viewport, opts) {
    this.viewport = viewport;
    this.opts = opts;
    this.spacer = document.createElement("div");
    this.spacer.className = "vspacer";
    this.layer = document.createElement("div");
    this.layer.className = "vrows";
    this.layer.setAttribute("role", "presentation");
    viewport.append(this.spacer, this.layer);
    this.rows = [];
    this.first = 0;
    this.count = 0;
    this.stick = false; // keep the view at the bottom as rows arrive
    this.dirty = true;
    viewport.addEventListener("scroll", () => {
      const v = this.viewport;
      this.atBottom = v.scrollTop + v.clientHeight >= v.scrollHeight - this.opts.rowHeight;
      this.dirty = true;
      this.update();
    }, { passive: true });
    this.atBottom = true;
  }

  /** Re-renders the rows in view. */
  update() {
    const { rowHeight, count } = this.opts;
    const v = this.viewport;
    const n = count();
    if (n !== this.count) {
      this.count = n;
      this.spacer.style.height = `${n * rowHeight}px`;
      if (this.stick && this.atBottom) v.scrollTop = v.scrollHeight;
    }
    const height = v.clientHeight || 400;
    const first = Math.max(0, Math.min(n - 1, Math.floor(v.scrollTop / rowHeight) - 2));
    const visible = Math.min(Math.max(0, n - Math.max(first, 0)), Math.ceil(height / rowHeight) + 5);
    while (this.rows.length < visible) {
      const row = this.opts.makeRow();
      row.style.height = `${rowHeight}px`;
      this.layer.append(row);
      this.rows.push(row);
    }
    while (this.rows.length > visible) this.rows.pop().remove();
    this.first = Math.max(first, 0);
    this.layer.style.transform = `translateY(${this.first * rowHeight}px)`;
    if (visible > 0) this.opts.render(this.first, this.rows);
    this.dirty = false;
  }

  /** Scrolls so that row `i` is in view. */
  scrollTo(i) {
    const { rowHeight } = this.opts;
    const v = this.viewport;
    const top = i * rowHeight;
    if (top < v.scrollTop) v.scrollTop = top;
    else if (top + rowHeight > v.scrollTop + v.clientHeight) v.scrollTop = top + rowHeight - v.clientHeight;
  }
}

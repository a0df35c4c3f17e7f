// atlas.show (atlas/notebook.py): a sentence page inlined into a notebook's <iframe srcdoc>.
// Runs before the page's own scripts. The head named by the frame's data (window.ATLAS_SHOW.head)
// goes into the address the page reads (#L3-H7); the frame grows to the page's height (where
// the notebook lets the frame be reached); links to the site's other pages do nothing, since
// there is no site around the frame.
"use strict";
(function () {
  const options = window.ATLAS_SHOW || {};
  if (options.head) history.replaceState(null, "", `#${options.head}`);

  /** Sets the frame's height to the page's, now and whenever the page's size changes. */
  function fitFrame() {
    let frame = null;
    try {
      frame = window.frameElement;
    } catch (err) {
      return; // a frame the notebook keeps apart: its own height stays
    }
    if (!frame || !window.ResizeObserver) return;
    const fit = () => { frame.style.height = `${document.documentElement.scrollHeight}px`; };
    new ResizeObserver(fit).observe(document.body);
  }

  document.addEventListener("DOMContentLoaded", fitFrame);
  document.addEventListener("click", (event) => {
    const link = event.target.closest && event.target.closest("a[href]");
    if (link && !link.getAttribute("href").startsWith("#")) event.preventDefault();
  });
})();

// atlas.show (atlas/notebook.py): a sentence page inlined into a notebook's <iframe srcdoc>, or
// saved on its own with .save(). Runs before the page's own scripts. The head named by the
// frame's data (window.ATLAS_SHOW.head) goes into the address the page reads (#L3-H7); the frame
// grows to the page's height (where the notebook lets the frame be reached); and links to the
// site's other pages, which lead nowhere here (there is no site around the page), become plain
// text: their href is removed, those the views' scripts add or change later included.
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

  /** Whether a link's href leads out of this document: a relative URL into the site (the
   * title, head pages, other sentences). Anchors (#L3-H7) stay, and so do absolute URLs
   * (https:, mailto:), which work wherever the page is. */
  function leadsOut(href) {
    return !href.startsWith("#") && !/^[a-z][a-z0-9+.-]*:/i.test(href);
  }

  /** Turns the links under ``root`` that lead out into plain text (an <a> without href is
   * neither a link nor a tab stop), keeping the elements so that scripts holding them work. */
  function disable(root) {
    const links = root.matches && root.matches("a[href]") ? [root] : [];
    if (root.querySelectorAll) links.push(...root.querySelectorAll("a[href]"));
    for (const link of links) {
      if (leadsOut(link.getAttribute("href"))) link.removeAttribute("href");
    }
  }

  new MutationObserver((changes) => {
    for (const change of changes) {
      if (change.type === "attributes") disable(change.target);
      else change.addedNodes.forEach(disable);
    }
  }).observe(document.documentElement, {
    childList: true, subtree: true, attributes: true, attributeFilter: ["href"],
  });
  document.addEventListener("DOMContentLoaded", () => {
    disable(document.documentElement); // as the parser left it, whatever the observer saw
    fitFrame();
  });
})();

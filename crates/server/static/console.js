// The console's own behaviour, kept out of the pages: the Content-Security-Policy allows
// scripts from this server only, never inline ones.
"use strict";
document.addEventListener("change", (event) => {
  const box = event.target;
  const name = box instanceof HTMLInputElement ? box.dataset.selectAll : undefined;
  if (!name) return;
  for (const c of document.querySelectorAll(`input[name="${CSS.escape(name)}"]`)) c.checked = box.checked;
});

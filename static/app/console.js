// Console helpers loaded on every admin page (no inline scripts):
// - the organisation switcher in the header submits when another organisation is chosen.
(function () {
  "use strict";
  function init() {
    document.querySelectorAll("form[data-autosubmit] select").forEach((select) => {
      select.addEventListener("change", () => select.form.submit());
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();

// Tag input: enhances <textarea data-tag-input> (one entry per line) into chips with a text box.
// The textarea stays the form value (hidden), so the form works the same without JavaScript.
(function () {
  "use strict";

  function enhance(textarea) {
    if (textarea.dataset.tagInputReady) return;
    textarea.dataset.tagInputReady = "1";
    const box = document.createElement("div");
    box.className =
      "tag-input flex flex-wrap items-center gap-1 border border-base-200 rounded-default px-2 py-1 " +
      "bg-white dark:bg-base-900 dark:border-base-700 min-h-[38px] max-w-2xl";
    const input = document.createElement("input");
    input.type = "text";
    input.className = "flex-grow min-w-[8rem] border-0 outline-none bg-transparent text-sm py-1";
    input.placeholder = textarea.dataset.placeholder || "";
    input.setAttribute("aria-label", textarea.getAttribute("aria-label") || textarea.name);

    const values = () => textarea.value.split(/\n+/).map((v) => v.trim()).filter(Boolean);
    const write = (list) => {
      textarea.value = list.join("\n");
      textarea.dispatchEvent(new Event("change", { bubbles: true }));
      render();
    };
    const add = (text) => {
      const parts = text.split(/[,，\n]+/).map((v) => v.trim()).filter(Boolean);
      if (!parts.length) return;
      const list = values();
      parts.forEach((p) => { if (!list.includes(p)) list.push(p); });
      write(list);
    };

    function render() {
      box.querySelectorAll(".tag-chip").forEach((chip) => chip.remove());
      values().forEach((value, index) => {
        const chip = document.createElement("span");
        chip.className =
          "tag-chip inline-flex items-center gap-1 rounded-default bg-primary-100 text-primary-700 " +
          "dark:bg-primary-500/20 dark:text-primary-300 px-2 py-0.5 text-sm";
        chip.textContent = value;
        const remove = document.createElement("button");
        remove.type = "button";
        remove.className = "leading-none opacity-70 hover:opacity-100";
        remove.textContent = "×";
        remove.setAttribute("aria-label", (window.gettext || String)("Remove") + " " + value);
        remove.addEventListener("click", () => {
          const list = values();
          list.splice(index, 1);
          write(list);
        });
        chip.appendChild(remove);
        box.insertBefore(chip, input);
      });
    }

    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === "," || event.key === "，") {
        event.preventDefault();
        add(input.value);
        input.value = "";
      } else if (event.key === "Backspace" && !input.value) {
        const list = values();
        list.pop();
        write(list);
      }
    });
    input.addEventListener("blur", () => { add(input.value); input.value = ""; });
    input.addEventListener("paste", (event) => {
      const text = (event.clipboardData || window.clipboardData).getData("text");
      if (/[,，\n]/.test(text)) {
        event.preventDefault();
        add(text);
      }
    });

    box.appendChild(input);
    textarea.style.display = "none";
    textarea.parentNode.insertBefore(box, textarea.nextSibling);
    render();
  }

  function init() {
    document.querySelectorAll("textarea[data-tag-input]").forEach(enhance);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();

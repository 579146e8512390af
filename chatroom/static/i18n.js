// The page's words: the server puts this language's catalog in the page (#strings), the
// same gettext catalog the templates use; t() looks a text up and fills in {names}.
"use strict";

const STRINGS = JSON.parse(document.getElementById("strings").textContent || "{}");
const LANG = document.documentElement.lang || "en";

function t(text, values = {}) {
  return (STRINGS[text] || text).replace(/\{(\w+)\}/gu, (all, name) => (name in values ? String(values[name]) : all));
}

// The switch: kept in a cookie for a year, read by the server on every page.
for (const button of document.querySelectorAll(".language")) {
  button.addEventListener("click", () => {
    document.cookie = `chatroom_lang=${button.dataset.lang}; path=/; max-age=31536000; SameSite=Lax`;
    location.reload();
  });
}

// Gatehouse dashboard: the little the pages need beyond HTML. Everything works without it,
// with every input of a rule row shown.
"use strict";
document.documentElement.classList.add("js");

// A sign-in link (`/login#token=...`, as `gatehouse demo` prints): the token stays in the
// fragment, which browsers never send; it is moved into the form, removed from the address
// bar and history, and submitted.
(function () {
  const form = document.getElementById("login-form");
  if (!form || !location.hash.startsWith("#token=")) return;
  const token = decodeURIComponent(location.hash.slice(7));
  history.replaceState(null, "", location.pathname + location.search);
  if (!token) return;
  form.querySelector("#token").value = token;
  form.submit();
})();

// A rule row shows only the inputs its selector needs.
const INPUTS = ["value", "claim", "scim_group", "access_group", "idp", "service_token"];
const SHOWN = {
  value: ["value"], none: [], scim_group: ["scim_group"], access_group: ["access_group"], idp: ["idp"],
  service_token: ["service_token"], claim: ["claim", "value", "idp"], value_idp: ["value", "idp"],
};
function updateRow(row) {
  const type = row.querySelector(".rule-type");
  const opt = type.options[type.selectedIndex];
  const kind = opt && opt.value ? opt.dataset.input : "";
  const shown = kind ? SHOWN[kind] || ["value"] : [];
  for (const name of INPUTS) {
    const el = row.querySelector(".in-" + name);
    if (el) el.classList.toggle("in-hidden", !shown.includes(name));
  }
  const value = row.querySelector(".in-value");
  if (value && opt) value.placeholder = opt.dataset.placeholder || "value";
}
function wireRow(row) {
  row.querySelector(".rule-type").addEventListener("change", () => updateRow(row));
  row.querySelector(".remove-rule").addEventListener("click", () => row.remove());
  updateRow(row);
}
document.querySelectorAll(".rule-row").forEach(wireRow);
const add = document.getElementById("add-rule");
if (add) {
  add.addEventListener("click", () => {
    const tpl = document.getElementById("rule-template");
    const row = tpl.content.firstElementChild.cloneNode(true);
    document.getElementById("rules").appendChild(row);
    wireRow(row);
    row.querySelector(".rule-type").focus();
  });
}

// Copy buttons.
document.querySelectorAll("[data-copy]").forEach((b) => {
  b.addEventListener("click", async () => {
    const text = document.getElementById(b.dataset.copy).textContent;
    try { await navigator.clipboard.writeText(text); b.textContent = "Copied"; } catch (_) { b.textContent = "Select and copy"; }
  });
});

// Confirmation before destructive forms.
document.querySelectorAll("form[data-confirm]").forEach((f) => {
  f.addEventListener("submit", (e) => { if (!window.confirm(f.dataset.confirm)) e.preventDefault(); });
});

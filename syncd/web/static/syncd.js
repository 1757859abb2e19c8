// Progressive enhancement only: every page works without this file.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement)) return;
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
    return;
  }
  // Mapping tables: send only the rows that change what is saved.
  for (const select of form.querySelectorAll("select[data-saved]")) {
    if (select.value === select.dataset.saved) select.disabled = true;
  }
});

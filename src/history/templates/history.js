// The history page's only script (the Content-Security-Policy allows this one by its hash): choose
// an evaluation, filter the item grid by id. The address can carry both
// (index.html#evaluation=KEY&filter=TEXT), so a link shows what its sender saw. Nothing here reads
// model output, and what it touches reaches the page as text.
(function () {
  var select = document.getElementById("evaluation");
  var sections = document.querySelectorAll("section.evaluation");
  function show() {
    for (var i = 0; i < sections.length; i++) {
      sections[i].hidden = !!select && sections[i].id !== select.value;
    }
  }
  function filter(input) {
    var needle = input.value.toLowerCase();
    var rows = document.querySelectorAll("#" + input.dataset.grid + " tbody tr");
    var shown = 0;
    for (var r = 0; r < rows.length; r++) {
      var hit = rows[r].dataset.id.toLowerCase().indexOf(needle) !== -1;
      rows[r].hidden = !hit;
      if (hit) shown++;
    }
    var count = document.getElementById(input.dataset.grid + "-shown");
    if (count) count.textContent = shown + " shown";
  }
  var params = new URLSearchParams(location.hash.slice(1));
  if (select) {
    if (params.get("evaluation")) select.value = params.get("evaluation");
    select.addEventListener("change", show);
    show();
  }
  var inputs = document.querySelectorAll("input.item-filter");
  for (var f = 0; f < inputs.length; f++) {
    inputs[f].addEventListener("input", function (ev) { filter(ev.target); });
    if (params.get("filter")) {
      inputs[f].value = params.get("filter");
      filter(inputs[f]);
    }
  }
})();

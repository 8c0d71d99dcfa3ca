// The dashboard on a wall screen: [data-fullscreen="#id"] puts that element in full screen
// (the board keeps refreshing inside it); pressing it again, or Esc, leaves.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-fullscreen]");
  if (!button) return;
  const target = document.querySelector(button.dataset.fullscreen);
  if (!target) return;
  if (document.fullscreenElement) {
    document.exitFullscreen();
  } else if (target.requestFullscreen) {
    target.requestFullscreen().catch(() => target.classList.toggle("is-wall"));
  } else {
    target.classList.toggle("is-wall");
  }
});

// Polling for a condition in tests: resolves true as soon as pred() holds,
// false when `ms` passed without it.
export async function waitFor(pred, ms = 5000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (pred()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return pred();
}

// The history of answers, kept in this browser's storage (never sent anywhere): it survives a reload and a restart,
// newest last, at most MAX_ENTRIES; a full storage drops the oldest rather than the new answer.

const KEY = "pilah.history.v1";
const MAX_ENTRIES = 200;

export function readHistory() {
  try {
    const entries = JSON.parse(localStorage.getItem(KEY) || "[]");
    return Array.isArray(entries) ? entries : [];
  } catch {
    return [];
  }
}

export function writeHistory(entries) {
  let kept = entries.slice(-MAX_ENTRIES);
  while (kept.length) {
    try {
      localStorage.setItem(KEY, JSON.stringify(kept));
      return kept;
    } catch {
      kept = kept.slice(1); // over the storage quota: the oldest goes first
    }
  }
  localStorage.removeItem(KEY);
  return kept;
}

export function addEntry(entry) {
  return writeHistory([...readHistory(), entry]);
}

export function updateEntry(id, change) {
  return writeHistory(readHistory().map((e) => (e.id === id ? { ...e, ...change } : e)));
}

export function clearHistory() {
  localStorage.removeItem(KEY);
  return [];
}

// As `pilah.app.history.statistics`: photos with a class grade count for their class, the rest as unsure.
export function statistics(entries) {
  const perClass = {};
  let unsure = 0;
  for (const e of entries) {
    if (e.grade === "sure" || e.grade === "likely") perClass[e.label] = (perClass[e.label] || 0) + 1;
    else unsure += 1;
  }
  const total = entries.length;
  const average = total ? entries.reduce((sum, e) => sum + e.confidence, 0) / total : 0;
  const ranked = Object.entries(perClass).sort((a, b) => b[1] - a[1]);
  return { total, average, perClass: ranked, unsure };
}

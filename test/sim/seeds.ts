/**
 * Runs a simulator property over many seeds. CI replays a fixed list (a red run is a
 * regression, not a new finding) within a time budget; `npm run sim` explores from a random
 * base; `SIM_SEED=n` replays one seed exactly. A failure names its seed and how to replay it.
 */
export interface SeedOptions {
  /** Seeds to try (env SIM_SEEDS overrides). */
  count?: number;
  /** Real time this property may take before it stops trying new seeds (env SIM_BUDGET_MS overrides). */
  budgetMs?: number;
}

/** A vitest timeout that fits the seed budget (the budget only bounds when new seeds start). */
export const SIM_TEST_TIMEOUT_MS = Number(process.env.SIM_BUDGET_MS ?? 5_000) * 3 + 30_000;

export function forEachSeed(
  name: string,
  property: (seed: number) => void,
  options: SeedOptions = {},
): { seeds: number } {
  const replay = process.env.SIM_SEED;
  if (replay !== undefined && replay !== "") {
    run(name, Number(replay), property);
    return { seeds: 1 };
  }
  const count = Number(process.env.SIM_SEEDS ?? options.count ?? 20);
  const budget = Number(process.env.SIM_BUDGET_MS ?? options.budgetMs ?? 5_000);
  const base = Number(process.env.SIM_BASE_SEED ?? 0x5eed);
  const started = Date.now();
  let tried = 0;
  for (let i = 0; i < count; i++) {
    // The first seed always runs; the budget bounds the rest.
    if (i > 0 && Date.now() - started > budget) break;
    run(name, (base + i * 0x9e3779b1) >>> 0, property);
    tried++;
  }
  if (process.env.SIM_SEEDS) console.info(`${name}: ${tried} seeds from base ${base}`);
  return { seeds: tried };
}

/** `forEachSeed` for a property that runs on promises (a simulator driving async shells). */
export async function forEachSeedAsync(
  name: string,
  property: (seed: number) => Promise<void>,
  options: SeedOptions = {},
): Promise<{ seeds: number }> {
  const replay = process.env.SIM_SEED;
  const seeds: number[] = [];
  if (replay !== undefined && replay !== "") seeds.push(Number(replay));
  else {
    const count = Number(process.env.SIM_SEEDS ?? options.count ?? 20);
    const base = Number(process.env.SIM_BASE_SEED ?? 0x5eed);
    for (let i = 0; i < count; i++) seeds.push((base + i * 0x9e3779b1) >>> 0);
  }
  const budget = Number(process.env.SIM_BUDGET_MS ?? options.budgetMs ?? 5_000);
  const started = Date.now();
  let tried = 0;
  for (const seed of seeds) {
    if (tried > 0 && Date.now() - started > budget) break;
    try {
      await property(seed);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new Error(
        `${name}: failed with seed ${seed}. Replay: SIM_SEED=${seed} npm run sim -- -t "${name}"\n${message}`,
      );
    }
    tried++;
  }
  if (process.env.SIM_SEEDS) console.info(`${name}: ${tried} seeds`);
  return { seeds: tried };
}

function run(name: string, seed: number, property: (seed: number) => void): void {
  try {
    property(seed);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(
      `${name}: failed with seed ${seed}. Replay: SIM_SEED=${seed} npm run sim -- -t "${name}"\n${message}`,
    );
  }
}

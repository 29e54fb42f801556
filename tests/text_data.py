"""A generated text data set as a TSV (no side effects on import: benchmarks use it too).

Each review mentions one topic (sports, food or tech, by its words) with a positive or negative opinion word, amid
filler words. Columns: `text`, `sentiment` (`pos`/`neg`, every 5th cell empty = missing), `topic`, `stars` (a
number correlated with the sentiment), `weight` (a sample weight).
"""

import numpy as np

POSITIVE = ["good", "great", "superb", "lovely", "fine"]
NEGATIVE = ["bad", "awful", "poor", "dull", "weak"]
TOPICS = {
    "sports": ["match", "goal", "team", "coach"],
    "food": ["pasta", "soup", "bread", "cheese"],
    "tech": ["laptop", "phone", "chip", "screen"],
}
FILLER = ["the", "a", "was", "really", "it", "this", "and", "very", "quite", "so"]


def review(rng, positive: bool, topic: str) -> str:
    words = list(rng.choice(FILLER, 4)) + [rng.choice(TOPICS[topic]), rng.choice(POSITIVE if positive else NEGATIVE)]
    rng.shuffle(words)
    return " ".join(str(w) for w in words)


def write_reviews_tsv(path, n=400, seed=0, missing_every=5) -> str:
    rng = np.random.default_rng(seed)
    lines = ["text\tsentiment\ttopic\tstars\tweight"]
    topics = sorted(TOPICS)
    for i in range(n):
        positive, topic = bool(rng.integers(2)), topics[int(rng.integers(3))]
        sentiment = "" if missing_every and i % missing_every == 0 else ("pos" if positive else "neg")
        stars = (4.0 if positive else 2.0) + float(rng.normal(0, 0.5))
        lines.append(f"{review(rng, positive, topic)}\t{sentiment}\t{topic}\t{stars:.3f}\t{1 + i % 3}")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return str(path)

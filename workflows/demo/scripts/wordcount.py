"""Word counting, imported by scripts/count_words.py (a module beside the script)."""

CODE_VERSION = "demo-v1"


def top_words(text: str, n: int) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for word in text.lower().split():
        word = word.strip(".,;:!?\"'()")
        if word:
            counts[word] = counts.get(word, 0) + 1
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]

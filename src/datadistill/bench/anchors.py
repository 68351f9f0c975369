"""Published accuracies (%, ConvNet-3, hard labels) to print beside ours. Source: shared/anchors.md;
entries marked approximate there are marked '*' here."""
from __future__ import annotations

# dataset -> our method name -> ({ipc: accuracy}, source)
PUBLISHED: dict[str, dict[str, tuple[dict[int, float], str]]] = {
    "fashion-mnist": {
        "full": ({1: 93.5, 10: 93.5, 50: 93.5}, "DC paper Table 1*"),
        "random": ({1: 51.4, 10: 73.8, 50: 82.5}, "DC paper Table 1*"),
        "herding": ({1: 67.0, 10: 71.1, 50: 71.9}, "DC paper*"),
        "kcenter": ({1: 66.9, 10: 54.7, 50: 68.3}, "DC paper*"),
        "dc": ({1: 70.5, 10: 82.3, 50: 83.6}, "KIP paper Table 1; DC README"),
        "dsa": ({1: 70.6, 10: 84.6, 50: 88.7}, "KIP paper Table 1; DC README"),
        "dm": ({1: 70.7, 10: 83.5, 50: 88.1}, "FRePo paper*"),
        "mtt": ({1: 75.1, 10: 87.2, 50: 88.3}, "FRePo paper*"),
    },
    "mnist": {
        "dc": ({1: 91.7, 10: 97.4, 50: 98.8}, "DC paper"),
        "dsa": ({1: 88.7, 10: 97.8, 50: 99.2}, "DSA paper"),
    },
}

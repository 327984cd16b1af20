"""Deep retrieval (the TFRS tutorial "Building deep retrieval models"), re-done with towerrec.

    python examples/deep_retrieval.py --data-dir ../shared/data/ml-100k --plot deep.png

MovieLens-100K ratings joined with movie titles, shuffled (seed 42) and cut 80/20. Query tower:
user-id embedding ‖ timestamp-bucket embedding ‖ normalised timestamp; candidate tower: title-id
embedding ‖ mean of title-token embeddings; both followed by dense layers. Three depths are
trained with Adagrad 0.1, batch 2048, for 300 epochs, with factorized top-100 accuracy on the
test set every 5 epochs, and plotted against epoch as in the tutorial's figure.
"""

from __future__ import annotations

import argparse

import torch

import towerrec as tr
from towerrec.models.deep_retrieval import tutorial_datasets, tutorial_model

LAYER_SIZES = ([32], [64, 32], [128, 64, 32])


def main(argv: list[str] | None = None) -> int:
    """Train the three models, print their top-100 accuracy, optionally plot the curves."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="extracted ml-100k (default: download)")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--plot", default=None, help="PNG file for top-100 accuracy vs epoch")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--progress", action="store_true", help="show a progress bar")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    # Data: ratings with titles, an 80/20 seeded split, fitted features, the movie corpus.
    ml = tr.datasets.movielens("100k", data_dir=args.data_dir)
    ratings = ml.ratings.merge(ml.items[["item_id", "title"]], on="item_id", how="left")
    space, corpus, train, test = tutorial_datasets(ratings, ml.items, seed=args.seed)
    print(space)

    histories: dict[str, tr.History] = {}
    for layer_sizes in LAYER_SIZES:
        torch.manual_seed(args.seed)
        model = tutorial_model(space, corpus, layer_sizes)
        trainer = tr.Trainer(
            optimizer=tr.optim.Adagrad(lr=0.1),
            batch_size=2048,
            epochs=args.epochs,
            validation_freq=5,
            seed=args.seed,
            progress=args.progress,
        )
        history = trainer.fit(model, train, validation=test)
        histories[f"{len(layer_sizes)} layer{'s' if len(layer_sizes) > 1 else ''}"] = history
        print(
            f"layer_sizes={layer_sizes}: top-100 accuracy {history.last('val_top_100'):.3f} "
            f"(top-10 {history.last('val_top_10'):.3f}) after {trainer.epoch} epochs, "
            f"{trainer.fit_seconds:.0f} s"
        )

    if args.plot:
        path = tr.plot.history(
            histories,
            metrics=["val_top_100"],
            path=args.plot,
            title="Deep retrieval on MovieLens-100K",
            ylabel="top-100 accuracy (test set)",
        )
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The multitask recommenders tutorial (rating + retrieval on MovieLens-100K), in towerrec.

    python examples/multitask.py --data-dir ../shared/data/ml-100k

Trains the tutorial's model three times (rating only, retrieval only, both), prints the test
metrics of each, then uses the joint model to predict a rating and to recommend five movies.
"""

from __future__ import annotations

import argparse

import torch

import towerrec as tr


class MovieLensModel(tr.Model):
    """User and movie embeddings shared by a rating head and a retrieval task."""

    def __init__(
        self, space: tr.FeatureSpace, rating_weight: float, retrieval_weight: float
    ) -> None:
        super().__init__()
        self.user_model = tr.layers.Embedding(space["user_id"].size, 32)
        self.movie_model = tr.layers.Embedding(space["movie_title"].size, 32)
        self.rating_model = tr.layers.MLP([256, 128, 1], in_features=64)
        self.rating_task = tr.tasks.Ranking("mse", metrics=[tr.metrics.RMSE()])
        self.retrieval_task = tr.tasks.Retrieval(
            metrics=tr.metrics.FactorizedTopK(self.all_movies, ks=(1, 5, 10, 50, 100))
        )
        self.rating_weight = rating_weight
        self.retrieval_weight = retrieval_weight

    def all_movies(self) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.arange(self.movie_model.num_embeddings)
        return self.movie_model(ids), ids

    def predict(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        u, m = self.user_model(users), self.movie_model(movies)
        return self.rating_model(torch.cat([u, m], dim=1)).squeeze(-1)

    def compute_loss(self, batch: dict[str, torch.Tensor], training: bool = False) -> torch.Tensor:
        users = self.user_model(batch["user_id"])
        movies = self.movie_model(batch["movie_title"])
        ratings = self.rating_model(torch.cat([users, movies], dim=1)).squeeze(-1)
        rating_loss = self.rating_task(batch["user_rating"], ratings, compute_metrics=not training)
        retrieval_loss = self.retrieval_task(
            users, movies, candidate_ids=batch["movie_title"], compute_metrics=not training
        )
        return self.rating_weight * rating_loss + self.retrieval_weight * retrieval_loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", default=None, help="extracted ml-100k folder (default: download and cache)"
    )
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    ml = tr.datasets.movielens("100k", data_dir=args.data_dir)
    ratings = ml.joined().rename(columns={"title": "movie_title", "rating": "user_rating"})
    train, test = tr.data.random_split(ratings, train=0.8, seed=42)
    space = tr.FeatureSpace(
        {
            "user_id": tr.features.Lookup(),
            "movie_title": tr.features.Lookup(),
            "user_rating": tr.features.Passthrough("float32"),
        }
    ).fit(ratings[["user_id", "user_rating"]], ml.items.rename(columns={"title": "movie_title"}))
    train_t, test_t = space.transform(train), space.transform(test)

    model = None
    for rating_weight, retrieval_weight, name in [
        (1.0, 0.0, "rating"),
        (0.0, 1.0, "retrieval"),
        (1.0, 1.0, "joint"),
    ]:
        torch.manual_seed(42)
        model = MovieLensModel(space, rating_weight, retrieval_weight)
        trainer = tr.Trainer(
            tr.optim.Adagrad(lr=0.1), batch_size=8192, epochs=args.epochs, progress=False
        )
        trainer.fit(model, train_t)
        metrics = trainer.evaluate(model, test_t)
        print(
            f"{name:>9} model: top-100 accuracy {metrics['top_100']:.3f}, RMSE {metrics['rmse']:.3f}"
            f"  (fit {trainer.fit_seconds:.1f} s)"
        )

    assert model is not None
    model.eval()
    titles = space["movie_title"]
    user = space["user_id"].transform([42])
    movie = titles.transform(["Dances with Wolves (1990)"])
    with torch.no_grad():
        rating = model.predict(user, movie).item()
        print(f"\nPredicted rating of user 42 for 'Dances with Wolves (1990)': {rating:.2f}")
        movie_ids = torch.arange(titles.num_special, titles.size)  # every movie, OOV id left out
        index = tr.index.BruteForce().index(model.movie_model(movie_ids), titles.inverse(movie_ids))
        scores, ids = index.query(model.user_model(user), k=5)
    print("Top-5 recommendations for user 42:")
    for title, score in zip(ids[0], scores[0].tolist(), strict=True):
        print(f"  {score:7.3f}  {title}")


if __name__ == "__main__":
    main()

"""Label quality: agreement between labelers, each labeler's estimated reliability, and the
statistics admins read (docs/quality.md).

- agreement.py: the agreement metrics, pure functions over plain answers (no database);
  scikit-learn's cohen_kappa_score, the krippendorff package and scipy's kendalltau do the
  arithmetic where they can;
- reliability.py: the Dawid-Skene latent-truth fit of a project's pairwise answers (numpy);
- selectors.py: the reads that feed both from a project's annotations;
- stats.py: the per-labeler statistics of the admin page and the API;
- views.py / api.py: the admin pages and the REST endpoints.

Answers are compared as stored, by completion id, never by screen position: in a pairwise
task "first" means the completion with the lower id won, whatever side it was shown on.
"""

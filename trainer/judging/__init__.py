"""AI judges (docs/ai-judges.md): their configuration, judging jobs and the mixing policy.

- services.py: create / update / run / pause judges; store a judging job's batches with the
  mixing policy's routing;
- views.py / api.py: the judges page and its calibration; the REST endpoints.
The verdicts themselves are labeling data (annotator/judging.py); the calibration figures are
label quality (annotator/quality/calibration.py).
"""

# Training jobs and the model registry arrive with the training-jobs issue (#4).

"""Training: the methods of ``rsmooth.train.methods`` (Gaussian augmentation, SmoothAdv, the vanilla-PGD
baselines, SmoothMix, ...), the loop of ``rsmooth.train.loop`` (ImageNet32 pre-training with fine-tuning,
self-training on pseudo-labelled data), batching in ``rsmooth.train.batches``. ``TrainConfig`` lives in
``rsmooth.train_config``; this package imports nothing itself, so the method registry stays torch-free."""

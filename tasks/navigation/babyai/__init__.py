"""BabyAI (Chevalier-Boisvert et al. 2019): grid-world levels of ``minigrid``, its bot as the expert, exact
shortest paths for SPL, demonstrations on disk, vectorised rollouts and the DataModule.
"""

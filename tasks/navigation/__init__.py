"""Instruction-following navigation: an agent reads an instruction and acts step by step as its view changes.

One sub-package per environment family (``babyai``: BabyAI grid worlds of ``minigrid``; R2R graphs sit
beside it), each with its environment, expert, data and DataModule; the agents' parts shared by the
families (``agent``, ``film``), the Lightning system (``system``), ``predict`` and ``datasets`` (the
DataModules by ``data.name``) sit here.
"""

"""Visual question answering (Antol et al. 2015; Kazemi and Elqursh 2017; Yang et al. 2016).

``records``: examples and the answer vocabulary; ``easy_vqa`` / ``vqa_v2``: the data formats; ``dataset``:
the dataset and its batch; ``datamodule`` / ``datasets``: the DataModules by ``data.name``; ``validate``:
``vltk data validate`` for VQA v2; ``model`` / ``heads``: the model assembly and answer heads; ``system``:
the Lightning system; ``predict``; ``score``: ``vltk score vqa``.
"""

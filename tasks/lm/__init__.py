"""Language modelling, the char-RNN lineage (Karpathy's min-char-rnn; Jozefowicz et al. 2015's cells).

``data``: text files cut into contiguous streams; ``vocab``: symbol vocabularies; ``datasets``: the
DataModules by ``data.name``; ``model``: the recurrent language model; ``system``: the Lightning system;
``predict``: sampling text.
"""

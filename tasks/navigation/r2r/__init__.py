"""Room-to-Room (R2R; Anderson et al. 2018, Vision-and-Language Navigation) without the Matterport3D
simulator: the published instruction files (:mod:`.files`) and the navigation graphs of the connectivity
files (:mod:`.graph`), in plain Python and numpy.
"""

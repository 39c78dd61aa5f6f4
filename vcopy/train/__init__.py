"""Training: SPD (``spd``), key frames jointly with SPD (``copy``) and the video-text model
(``text``), on what they share (``loop``: the run folder, schedule, optimiser step and epoch loop;
``data`` and ``maps``: the copy dataset and its training maps). ``config`` holds what each trainer
trains, without torch; everything else here needs the training extra (``pip install vcopy[train]``).
"""

"""Evaluation of lyric models (`rapgpt eval`): how good, how close to an artist's style, and how original.

    intrinsic     loss, perplexity, accuracy, bits per character on a dataset split
    embed         sentence embeddings (all-MiniLM-L6-v2 by default, any local encoder)
    references    real songs cut into chunks, split by song for training and calibration
    style         the style classifier and the cosine similarity to the artist's lyrics
    craft         rhyme density (DopeLearning), end rhymes, distinct-n, repetition, line shape
    originality   verbatim copies from the training text, through an n-gram index
    scoring       all of the above for a set of generations, beside real songs
    report        report.md / .html / .json and plots
    run           the command: generation, then scoring and the report
"""

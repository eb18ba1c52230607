def moving_average(values, window):
    """Return the average of every `window` consecutive values.

    moving_average([1, 2, 3, 4], 2) should give [1.5, 2.5, 3.5].
    """
    averages = []
    for start in range(len(values) - window):
        chunk = values[start:start + window]
        averages.append(sum(chunk) / window)
    return averages

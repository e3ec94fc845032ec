"""The API's routes, one router per concern: the service's health and model, predictions, feedback."""

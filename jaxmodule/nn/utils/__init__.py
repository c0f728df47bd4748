"""`jaxmodule.nn.utils`: clip_grad, parameters_to_vector, parametrizations."""

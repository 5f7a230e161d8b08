"""Next-token prediction: the distribution, the sampling controls, writing step by step, the logit lens, surprise."""

from pages.common import needed, page, require_model
from pages.views import predict

page(*predict.PARAMS, title="nav_predict", intro="predict_intro")
loaded = require_model(decoder=True)
read = needed(predict.inputs(loaded))
predict.candidates(loaded, read)
predict.side_by_side(loaded, read)
predict.greedy_vs_sampled(loaded, read)
predict.logit_lens(read)
predict.surprise(read)

//! Dev-set metrics of the GLUE tasks: accuracy, F1 of the positive class (MRPC, QQP),
//! Matthews correlation (CoLA), Pearson and Spearman correlation (STS-B).

pub fn accuracy(pred: &[usize], gold: &[usize]) -> f64 {
    let right = pred.iter().zip(gold).filter(|(p, g)| p == g).count();
    right as f64 / gold.len().max(1) as f64
}

/// Confusion counts for class 1 as "positive": (tp, fp, fn, tn).
fn confusion(pred: &[usize], gold: &[usize]) -> (f64, f64, f64, f64) {
    let mut c = (0.0, 0.0, 0.0, 0.0);
    for (&p, &g) in pred.iter().zip(gold) {
        match (p == 1, g == 1) {
            (true, true) => c.0 += 1.0,
            (true, false) => c.1 += 1.0,
            (false, true) => c.2 += 1.0,
            (false, false) => c.3 += 1.0,
        }
    }
    c
}

/// F1 of class 1, as scikit-learn's `f1_score` (0 when there are no true positives).
pub fn f1(pred: &[usize], gold: &[usize]) -> f64 {
    let (tp, fp, fn_, _) = confusion(pred, gold);
    if tp == 0.0 {
        0.0
    } else {
        2.0 * tp / (2.0 * tp + fp + fn_)
    }
}

/// Matthews correlation coefficient, as scikit-learn's `matthews_corrcoef` for two classes
/// (0 when a marginal is empty).
pub fn matthews(pred: &[usize], gold: &[usize]) -> f64 {
    let (tp, fp, fn_, tn) = confusion(pred, gold);
    let denom = ((tp + fp) * (tp + fn_) * (tn + fp) * (tn + fn_)).sqrt();
    if denom == 0.0 {
        0.0
    } else {
        (tp * tn - fp * fn_) / denom
    }
}

pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    sxy / (sxx * syy).sqrt()
}

/// Spearman's rho: Pearson correlation of the ranks, ties sharing their average rank.
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&ranks(x), &ranks(y))
}

fn ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut ranks = vec![0.0; v.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
            j += 1;
        }
        let average = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = average;
        }
        i = j + 1;
    }
    ranks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_metrics_match_scikit_learn() {
        // Values from scikit-learn 1.9.1 on the same vectors.
        let gold = [1, 1, 0, 0, 1, 0, 1, 1];
        let pred = [1, 0, 0, 1, 1, 0, 1, 0];
        assert_eq!(accuracy(&pred, &gold), 0.625);
        assert!((f1(&pred, &gold) - 0.6666666666666666).abs() < 1e-12);
        assert!((matthews(&pred, &gold) - 0.2581988897471611).abs() < 1e-12);
        assert_eq!(matthews(&[1, 1], &[0, 1]), 0.0);
    }

    #[test]
    fn correlations_match_scipy() {
        // Values from scipy 1.17.1 `pearsonr` / `spearmanr`.
        let x = [1.0, 2.0, 2.0, 4.0, 5.0];
        let y = [2.0, 1.0, 4.0, 3.0, 5.0];
        assert!((pearson(&x, &y) - 0.6735753140545634).abs() < 1e-12);
        assert!((spearman(&x, &y) - 0.6668859288553503).abs() < 1e-12);
        assert_eq!(ranks(&x), [1.0, 2.5, 2.5, 4.0, 5.0]);
    }
}
